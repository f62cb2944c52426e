"""``python export/convert.py``: defaults, run metrics in the manifest, exit codes, clear errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.manifest import SCHEMA_VERSION, Manifest
from export.context import ExportError
from export.convert import main, parse_tolerances
from export.inputs import find_latest_model

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run_dir(tmp_path: Path, model: Path, metrics: dict | None = None, **config) -> Path:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    shutil.copy(model, run / "model.keras")
    (run / "config.json").write_text(json.dumps({"run_id": "r1-id", "model": "tiny_cnn",
                                                 "image_size": 32, **config}))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def _one_line_error(capsys, *needles: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def test_cli_exports_checks_and_prints_next_command(tiny_model_path, synthetic_dataset,
                                                    tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--model", str(tiny_model_path), "--data", str(synthetic_dataset), "--out", str(out),
               "--formats", "tflite_int8,onnx_fp32", "--calibration-count", "40"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "metrics.json not found" in cap.err and "train/evaluate.py" in cap.err
    assert "only 40 calibration images" in cap.err
    assert "| tflite_int8 | model_int8.tflite |" in cap.out
    assert f"python edge/classify.py --model {out / 'model_int8.tflite'}" in cap.out
    assert f"python benchmarks/latency.py --artifacts {out}" in cap.out
    m = Manifest.load(out / "manifest.json")
    assert set(m.artifacts) == {"tflite_int8", "onnx_fp32"}
    assert (m.threshold, m.temperature) == (0.5, 1.0)
    report = json.loads((out / "export_report.json").read_text())
    assert report["n_test"] == 16 and all(r["parity"]["ok"] for r in report["rows"])
    assert report["calibration_images"] == 40  # how it was made, for the model card
    assert report["command"].startswith("python export/convert.py --model ")
    assert report["command"].endswith("--calibration-count 40")


def test_cli_fills_manifest_from_run_metrics(tiny_model_path, tmp_path, capsys):
    metrics = {"threshold": 0.31, "threshold_rule": "sensitivity>=0.95 on val",
               "temperature": 1.7, "n_test": 633,
               "test": {"accuracy": 0.93, "roc_auc": 0.97, "sensitivity": 0.95,
                        "specificity": 0.91, "curve": [1, 2, 3]}}
    run = _run_dir(tmp_path, tiny_model_path, metrics)
    rc = main(["--run", str(run), "--formats", "tflite_fp32", "--skip-parity", "--keras-threshold"])
    assert rc == 0, capsys.readouterr().err
    m = Manifest.load(run / "export" / "manifest.json")
    assert (m.threshold, m.temperature, m.run_id, m.model_name) == (0.31, 1.7, "r1-id", "tiny_cnn")
    assert m.threshold_rule == "sensitivity>=0.95 on val"
    assert m.metrics["test"] == {"accuracy": 0.93, "roc_auc": 0.97, "sensitivity": 0.95,
                                 "specificity": 0.91}
    assert m.metrics["n_test"] == 633


def test_cli_gives_each_file_its_own_threshold(tiny_model_path, synthetic_dataset, tmp_path,
                                               capsys):
    """Each file's threshold: the run's rule on its own outputs for the run's validation split."""
    import keras

    from export.inputs import operating_rule, read_run
    from export.parity import artifact_probabilities, keras_probabilities
    from export.threshold import choose

    run = _run_dir(tmp_path, tiny_model_path, None, val_fraction=0.5)
    (run / "metrics.json").write_text(json.dumps({"threshold": 0.5, "temperature": 1.0}))
    rule = operating_rule(read_run(run), synthetic_dataset, 32)
    assert rule is not None and len(rule.labels) == 32 and rule.confidence == 0.0  # old metrics
    rule.target_sensitivity, rule.confidence = 0.9, 0.95
    model = keras.saving.load_model(tiny_model_path, compile=False)
    keras_thr = choose(rule.labels, keras_probabilities(model, rule.images), 1.0, rule).threshold
    (run / "metrics.json").write_text(json.dumps({   # what train/evaluate.py would have written
        "threshold": keras_thr, "temperature": 1.0, "target_sensitivity": 0.9,
        "threshold_confidence": 0.95}))
    rc = main(["--run", str(run), "--data", str(synthetic_dataset), "--formats",
               "tflite_fp32,tflite_int8", "--calibration-count", "40"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "warning: on these" not in cap.err
    assert "Thresholds: each file's own" in cap.out and "| threshold |" in cap.out
    m = Manifest.load(run / "export" / "manifest.json")
    assert m.threshold == keras_thr
    assert m.artifacts["tflite_fp32"].threshold == pytest.approx(keras_thr, abs=1e-5)
    raw, _, _ = artifact_probabilities(run / "export" / "model_int8.tflite", "litert", m,
                                       rule.images)
    assert m.artifacts["tflite_int8"].threshold == choose(rule.labels, raw, 1.0, rule).threshold

    # a metrics.json whose threshold the rule does not reproduce on these images is flagged
    (run / "metrics.json").write_text(json.dumps({"threshold": 0.31, "temperature": 1.0}))
    assert main(["--run", str(run), "--data", str(synthetic_dataset), "--formats",
                 "tflite_fp32", "--skip-parity"]) == 0
    assert "not the run's 0.3100" in capsys.readouterr().err
    # --keras-threshold: every file uses the manifest's
    assert main(["--run", str(run), "--data", str(synthetic_dataset), "--formats",
                 "tflite_fp32", "--skip-parity", "--keras-threshold"]) == 0
    assert "Thresholds:" not in capsys.readouterr().out
    assert Manifest.load(run / "export" / "manifest.json").artifacts["tflite_fp32"].threshold is None


def test_cli_out_of_tolerance_exits_1_naming_numbers(tiny_model_path, synthetic_dataset,
                                                     tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--model", str(tiny_model_path), "--data", str(synthetic_dataset), "--out", str(out),
               "--formats", "tflite_fp16,tflite_fp32", "--tolerance", "tflite_fp16.max_prob_diff=0"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: tflite_fp16: outside tolerance: max |p - p_keras|" in err
    assert "> 0e+00" in err and "tflite_fp32" not in err.split("error:", 1)[1]


def test_default_model_is_newest_run(tmp_path, tiny_model_path):
    old = _run_dir(tmp_path, tiny_model_path) / "model.keras"
    new = tmp_path / "runs" / "r2" / "model.keras"
    new.parent.mkdir()
    shutil.copy(tiny_model_path, new)
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert find_latest_model((tmp_path / "runs",)) == new
    with pytest.raises(ExportError, match="no trained model found"):
        find_latest_model((tmp_path / "nothing",))


def test_tolerance_overrides():
    tol = parse_tolerances(["tflite_int8.min_agreement=0.9", "all.max_prob_diff=none",
                            "onnx_fp32.max_accuracy_drop=0.05"])
    assert tol["tflite_int8"].min_agreement == 0.9 and tol["tflite_fp32"].min_agreement == 0.99
    assert all(t.max_prob_diff is None for t in tol.values())
    assert tol["onnx_fp32"].max_accuracy_drop == 0.05
    for bad, msg in (("tflite_int8.min_agreement", "FORMAT.FIELD=VALUE"),
                     ("foo.min_agreement=1", "unknown format 'foo'"),
                     ("all.speed=1", "unknown tolerance field")):
        with pytest.raises(ExportError, match=msg):
            parse_tolerances([bad])


@pytest.mark.parametrize("case", ["missing", "empty", "garbage", "truncated", "bad_member",
                                  "not_keras"])
def test_bad_model_file_is_one_line_error(case, tiny_model_path, tmp_path, capsys):
    path = tmp_path / ("model.txt" if case == "not_keras" else "model.keras")
    data = tiny_model_path.read_bytes()
    bad_member = data[:200] + b"x" * 200 + data[400:]  # zip directory intact, a member corrupt
    content = {"missing": None, "empty": b"", "garbage": os.urandom(2048),
               "truncated": data[: len(data) // 2], "bad_member": bad_member,
               "not_keras": data}[case]
    if content is not None:
        path.write_bytes(content)
    rc = main(["--model", str(path), "--formats", "tflite_fp32", "--skip-parity"])
    assert rc == 2
    _one_line_error(capsys, str(path))
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())


def test_model_without_image_input_is_refused(tmp_path, capsys):
    import keras

    m = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="sigmoid")])
    path = tmp_path / "tabular.keras"
    m.save(path)
    assert main(["--model", str(path), "--skip-parity", "--formats", "tflite_fp32"]) == 2
    _one_line_error(capsys, str(path), "not an image classifier", "(None, H, W, 3)")


def test_no_calibration_images(tiny_model_path, synthetic_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    for split in ("train", "test"):
        for label in ("benign", "malignant"):
            (data / split / label).mkdir(parents=True)
    rc = main(["--model", str(tiny_model_path), "--data", str(data), "--out", str(tmp_path / "o"),
               "--formats", "tflite_int8", "--skip-parity"])
    assert rc == 2
    _one_line_error(capsys, str(data / "train" / "benign"), "class folder holds no image")
    rc = main(["--model", str(tiny_model_path), "--data", str(synthetic_dataset), "--out",
               str(tmp_path / "o"), "--formats", "tflite_int8", "--skip-parity", "-n", "0"])
    assert rc == 2
    _one_line_error(capsys, "no calibration images found", "tflite_int8", "--data")


def test_unwritable_output_folder(tiny_model_path, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["--model", str(tiny_model_path), "--out", str(blocker / "export"),
               "--formats", "tflite_fp32", "--skip-parity"])
    assert rc == 2
    _one_line_error(capsys, str(blocker / "export"), "not writable", "--out")


def test_unknown_format_is_usage_error(tiny_model_path, capsys):
    assert main(["--model", str(tiny_model_path), "--formats", "tflite_int4"]) == 2
    _one_line_error(capsys, "tflite_int4", "choose from")


def test_script_runs_from_any_folder(tmp_path):
    """The bootstrap lets ``python export/convert.py`` import the package without install."""
    r = subprocess.run([sys.executable, str(ROOT / "export" / "convert.py"), "--help"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0 and "--calibration-count" in r.stdout


def test_border_fill_is_recorded_and_applied_by_the_runner(tiny_model_path, synthetic_dataset,
                                                           tmp_path, capsys):
    """--border fill_dark: in the manifest, so the runner fills a dark ring before the model."""
    from edge.classifier import Classifier
    from edge.preprocess import fill_dark_border, to_model_input
    from research.shifts import ring_shift as _ring
    from tests.fixtures_common import synth_lesion

    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_path), "--data", str(synthetic_dataset), "--out",
                 str(out), "--formats", "tflite_int8", "--calibration-count", "40",
                 "--border", "fill_dark"]) == 0, capsys.readouterr().err
    m = Manifest.load(out / "manifest.json")
    assert m.border == "fill_dark" and m.schema == SCHEMA_VERSION
    from export.card import _corrections  # the model card says so; a plain manifest says nothing
    assert "`border: fill_dark`" in _corrections(m)[0] and _corrections(Manifest()) == []
    assert json.loads((out / "export_report.json").read_text())["command"].endswith(
        "--border fill_dark")
    clf = Classifier(out / "model_int8.tflite")
    img = synth_lesion(np.random.default_rng(2), True, 32)
    ringed = _ring(img, 0.9)
    assert not np.array_equal(fill_dark_border(ringed), ringed)
    assert np.array_equal(clf.prepare(ringed), clf.prepare(fill_dark_border(ringed)))
    spec = clf.runtime.input  # without the border correction the tensor would differ
    assert not np.array_equal(clf.prepare(ringed),
                              to_model_input(ringed, spec.dtype, spec.scale, spec.zero_point))
    import cv2

    from edge import classify
    f = tmp_path / "ringed.png"
    cv2.imwrite(str(f), cv2.cvtColor(ringed, cv2.COLOR_RGB2BGR))
    capsys.readouterr()
    assert classify.main(["-m", str(out / "model_int8.tflite"), str(f)]) == 0
    assert "; dark-border fill; not a medical device" in capsys.readouterr().out  # says so
    raw = Classifier(out / "model_int8.tflite", guard=False)  # gate and guard off
    p_ring = raw.predict_rgb(ringed).raw_probability
    assert p_ring is not None and p_ring == raw.predict_rgb(fill_dark_border(ringed)).raw_probability
