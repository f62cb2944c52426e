"""Export pipeline on a tiny trained model: every format, real runtimes, parity, manifest, atomicity."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from core.atomic import sha256_file
from edge.classifier import Classifier
from edge.manifest import Manifest, find_manifest, read_embedded
from edge.runtimes import open_runtime
from export.formats import FORMAT_NAMES, FORMATS, Tolerance, select_formats
from export.parity import (artifact_probabilities, check_artifact, compare,
                           keras_probabilities)
from export.pipeline import export_model
from export.threshold import OperatingRule, choose
from tests.fixtures_export import synthetic_arrays, tiny_operating_rule
from core.metrics import apply_temperature, wilson_lower_bound

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_model(tiny_model_path):
    import keras

    return keras.saving.load_model(tiny_model_path, compile=False)


@pytest.fixture(scope="module")
def test_set():
    return synthetic_arrays(48, seed=12)  # the images the tiny_export fixture checked parity on


def test_tiny_model_outputs_vary(keras_model, test_set):
    """Parity on a model with constant outputs would prove nothing."""
    p = keras_probabilities(keras_model, test_set[0])
    assert p.max() - p.min() > 0.5, f"tiny model outputs barely vary: {p.min():.3g}..{p.max():.3g}"
    assert 0.3 < np.mean(p >= 0.5) < 0.7


def test_registry_names_files_and_selection():
    assert FORMAT_NAMES == ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
                            "onnx_fp32", "onnx_int8")
    assert len({f.filename for f in FORMATS.values()}) == len(FORMATS)
    assert [f.name for f in select_formats("onnx_int8, tflite_fp32")] == ["tflite_fp32", "onnx_int8"]
    with pytest.raises(ValueError, match="tflite_int4.*choose from"):
        select_formats("tflite_int4")


def test_every_format_exported(tiny_export_results):
    out, results = tiny_export_results
    assert [r.name for r in results] == list(FORMAT_NAMES)
    for r in results:
        assert r.ok and r.passed, f"{r.name}: {r.error}"
        assert r.path == out / FORMATS[r.name].filename and r.path.is_file()
        assert r.bytes == r.path.stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_artifact_runs_with_real_runtime(tiny_export, name):
    fmt = FORMATS[name]
    rt = open_runtime(tiny_export / fmt.filename, backend=fmt.runtime)
    assert rt.backend == fmt.runtime
    assert rt.input.shape == (1, 32, 32, 3)
    art = Manifest.load(tiny_export / "manifest.json").artifacts[name]
    assert (art.input.dtype, art.input.scale, art.input.zero_point) == (
        rt.input.dtype, pytest.approx(rt.input.scale), rt.input.zero_point)
    assert (art.output.dtype, art.output.scale, art.output.zero_point) == (
        rt.output.dtype, pytest.approx(rt.output.scale), rt.output.zero_point)
    if name == "tflite_int8":
        assert rt.input.dtype == rt.output.dtype == "int8"
        assert art.input.quantized and art.output.quantized
    else:
        assert rt.input.dtype == "float32"


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_parity_with_keras(tiny_export, keras_model, test_set, name):
    """Independent re-check: the runner's code path vs Keras on the same uint8 images."""
    x, y = test_set
    fmt = FORMATS[name]
    clf = Classifier(tiny_export / fmt.filename, backend=fmt.runtime)
    p_art = np.array([clf.raw_probability(clf.prepare(img)) for img in x])
    p_keras = keras_probabilities(keras_model, x)
    agree = np.mean((p_art >= 0.5) == (p_keras >= 0.5))
    if fmt.quantized:
        assert agree >= 0.95 and np.abs(p_art - p_keras).max() < 0.25
    else:
        assert agree == 1.0 and np.abs(p_art - p_keras).max() <= fmt.tolerance.max_prob_diff
    # the report's agreements: both at the Keras threshold (checked), and the file at its own
    m = Manifest.load(tiny_export / "manifest.json")
    cal_art, cal_keras = (apply_temperature(p, m.temperature) for p in (p_art, p_keras))
    agree = np.mean((cal_art >= m.threshold) == (cal_keras >= m.threshold))
    decisions = np.mean((cal_art >= clf.manifest.threshold) == (cal_keras >= m.threshold))
    report = json.loads((tiny_export / "export_report.json").read_text())
    row = next(r for r in report["rows"] if r["format"] == name)
    assert row["parity"]["n"] == len(x) and row["parity"]["ok"]
    assert row["parity"]["threshold"] == clf.manifest.threshold
    assert row["parity"]["agreement"] == pytest.approx(agree)
    assert row["parity"]["decision_agreement"] == pytest.approx(decisions)
    assert row["parity"]["max_abs_diff"] == pytest.approx(np.abs(p_art - p_keras).max(), abs=1e-6)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_each_file_gets_its_own_validation_threshold(tiny_export_results, name):
    """Export repeats the threshold rule on each file's own validation outputs."""
    out, results = tiny_export_results
    rule, res = tiny_operating_rule(), next(r for r in results if r.name == name)
    m = Manifest.load(out / "manifest.json")
    art, fmt = m.artifacts[name], FORMATS[name]
    raw, _, _ = artifact_probabilities(out / fmt.filename, fmt.runtime, m, rule.images)
    cal = apply_temperature(raw, m.temperature)
    pos = np.sort(cal[rule.labels == 1])[::-1]
    k = next(k for k in range(1, len(pos) + 1)   # fewest positives the Wilson bound accepts
             if wilson_lower_bound(k, len(pos), rule.confidence) >= rule.target_sensitivity)
    assert wilson_lower_bound(k - 1, len(pos), rule.confidence) < rule.target_sensitivity
    assert k == 40
    assert art.threshold == pytest.approx(pos[k - 1]) and res.threshold == art.threshold
    assert "own outputs for the 80 validation images" in art.threshold_rule
    assert Classifier(out / fmt.filename).manifest.threshold == art.threshold   # the runner's
    assert read_embedded(out / fmt.filename).artifacts[name].threshold == art.threshold
    row = next(r for r in json.loads((out / "export_report.json").read_text())["rows"]
               if r["format"] == name)
    assert row["operating"]["threshold"] == art.threshold
    assert row["operating"]["val_sensitivity"] == pytest.approx(np.mean(pos >= art.threshold))


def test_threshold_choice_follows_the_files_outputs():
    """Shifted (e.g. int8-rounded) outputs get a threshold that restores validation sensitivity."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    p = np.clip(np.where(y == 1, rng.beta(5, 2, 400), rng.beta(2, 5, 400)), 0.01, 0.99)
    rule = OperatingRule(None, y, 0.9, 0.95)
    float_thr, shifted = choose(y, p, 1.0, rule), p * 0.9
    own = choose(y, shifted, 1.0, rule)
    assert own.threshold < float_thr.threshold
    assert own.val_sensitivity == pytest.approx(float_thr.val_sensitivity)
    assert np.mean(shifted[y == 1] >= float_thr.threshold) < float_thr.val_sensitivity


def test_manifest_sidecar_checksums(tiny_export):
    m = Manifest.load(tiny_export / "manifest.json")
    assert set(m.artifacts) == set(FORMAT_NAMES)
    assert (m.input_height, m.input_width, m.color_order) == (32, 32, "RGB")
    assert m.versions.get("tensorflow-cpu") or m.versions.get("tensorflow")
    for name, art in m.artifacts.items():
        path = tiny_export / art.file
        assert art.sha256 == sha256_file(path) and art.bytes == path.stat().st_size
        assert art.runtime == FORMATS[name].runtime


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_embedded_manifest_round_trip(tiny_export, tmp_path, name):
    """Each file carries the manifest; the runner works from the artifact alone."""
    sidecar = Manifest.load(tiny_export / "manifest.json")
    embedded = read_embedded(tiny_export / FORMATS[name].filename)
    assert embedded is not None
    expected = sidecar.to_dict()
    for a in expected["artifacts"].values():
        a["sha256"], a["bytes"] = "", 0  # a file cannot hold its own hash
    expected["created"] = ""  # nor the export time (the same model exported again: same bytes)
    assert embedded.to_dict() == expected
    alone = tmp_path / FORMATS[name].filename
    shutil.copy(tiny_export / FORMATS[name].filename, alone)
    assert find_manifest(alone).to_dict() == expected
    img = synthetic_arrays(1, seed=5)[0][0]
    p_alone = Classifier(alone).predict_rgb(img).raw_probability
    p_sidecar = Classifier(tiny_export / FORMATS[name].filename).predict_rgb(img).raw_probability
    assert p_alone == pytest.approx(p_sidecar, abs=1e-7)


def test_report_files(tiny_export):
    report = json.loads((tiny_export / "export_report.json").read_text())
    assert report["passed"] is True and len(report["rows"]) == len(FORMAT_NAMES)
    for row in report["rows"]:
        assert {"format", "bytes", "seconds", "load_ms", "status", "parity"} <= set(row)
    md = (tiny_export / "export_report.md").read_text()
    assert "| format |" in md and "model_int8.onnx" in md and "not a medical device" in md


def test_parity_outside_tolerance_names_numbers(tiny_export, keras_model, test_set):
    x, y = test_set
    m = Manifest.load(tiny_export / "manifest.json")
    p_keras = keras_probabilities(keras_model, x)
    strict = Tolerance(max_prob_diff=0.0, min_agreement=1.0, max_accuracy_drop=0.0)
    r = check_artifact(tiny_export / "model_int8.tflite", FORMATS["tflite_int8"], m, x, y,
                       p_keras, strict)
    assert not r.ok and r.max_abs_diff > 0
    assert any(f"{r.max_abs_diff:.2e}" in f for f in r.failures)


def _failing(name: str, exporter):
    return dataclasses.replace(FORMATS[name], exporter=exporter)


def test_failing_format_does_not_stop_others(monkeypatch, tiny_model_path, tiny_export, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    shutil.copy(tiny_export / "model_fp16.tflite", out)  # stale file from an earlier export

    def boom(ctx, dst):
        raise RuntimeError("converter exploded")

    def garbage(ctx, dst):
        dst.write_bytes(b"this is not a flatbuffer")

    monkeypatch.setitem(FORMATS, "tflite_fp16", _failing("tflite_fp16", boom))
    monkeypatch.setitem(FORMATS, "tflite_dynamic", _failing("tflite_dynamic", garbage))
    x, y = synthetic_arrays(16, seed=3)
    results = export_model(tiny_model_path, out, "tflite_fp32,tflite_fp16,tflite_dynamic,onnx_fp32",
                           test_images=x, test_labels=y, log=lambda m: None)
    by = {r.name: r for r in results}
    assert by["tflite_fp16"].error == "RuntimeError: converter exploded" and not by["tflite_fp16"].ok
    assert not by["tflite_dynamic"].ok and "not a valid TFLite model" in by["tflite_dynamic"].error
    assert by["tflite_fp32"].passed and by["onnx_fp32"].passed
    assert sorted(p.name for p in out.glob("model_*")) == ["model_fp32.onnx", "model_fp32.tflite"]
    assert set(Manifest.load(out / "manifest.json").artifacts) == {"tflite_fp32", "onnx_fp32"}
    report = json.loads((out / "export_report.json").read_text())
    assert report["passed"] is False
    assert {r["format"]: r["status"] for r in report["rows"]}["tflite_fp16"] == "export failed"


def test_interrupted_export_leaves_no_valid_looking_file(monkeypatch, tiny_model_path,
                                                        tiny_export, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    old = tiny_export / "model_fp32.tflite"
    shutil.copy(old, out)

    def half_then_interrupt(ctx, dst):
        dst.write_bytes(old.read_bytes()[: old.stat().st_size // 2])
        raise KeyboardInterrupt

    monkeypatch.setitem(FORMATS, "tflite_fp16", _failing("tflite_fp16", half_then_interrupt))
    with pytest.raises(KeyboardInterrupt):
        export_model(tiny_model_path, out, "tflite_fp32,tflite_fp16", log=lambda m: None)
    assert sorted(p.name for p in out.iterdir()) == ["model_fp32.tflite"]  # no staging, no temp
    assert sha256_file(out / "model_fp32.tflite") == sha256_file(old)  # earlier file untouched


def test_staging_left_by_a_killed_export_is_removed(tiny_model_path, tmp_path):
    """A hard kill (no finally) leaves a hidden staging folder; the next export removes it,
    but never one whose process is still running."""
    out = tmp_path / "export"
    dead = _dead_pid()
    orphan, live = out / f".export-staging-{dead}-abc", out / f".export-staging-{os.getpid()}-x"
    for d in (orphan, live):
        (d / "work").mkdir(parents=True)
        (d / "model_int8.tflite").write_bytes(b"half")
    logs = []
    export_model(tiny_model_path, out, "tflite_fp32", log=logs.append)
    assert not orphan.exists() and live.is_dir()
    assert any(orphan.name in m and "interrupted" in m for m in logs)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p != live]


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


LEGACY_PYTHON = os.environ.get("TFLITE_RUNTIME_PYTHON", "")
_LOAD = ("import sys, numpy as np\nfrom tflite_runtime.interpreter import Interpreter\n"
         "it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()\n"
         "d = it.get_input_details()[0]; it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype']))\n"
         "it.invoke(); print('ok')")


@pytest.mark.skipif(not LEGACY_PYTHON, reason="set TFLITE_RUNTIME_PYTHON to a Python with "
                    "tflite-runtime==2.14.0 (numpy<2) to check the legacy-device formats")
@pytest.mark.parametrize("name", ["tflite_dynamic", "tflite_int8", "tflite_fp32"])
def test_loads_on_tflite_runtime_2_14(tiny_export, name):
    r = subprocess.run([LEGACY_PYTHON, "-c", _LOAD, str(tiny_export / FORMATS[name].filename)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-500:]


def test_own_threshold_alone_is_not_a_parity_failure(tiny_export):
    """Identical outputs at a moved threshold: the format changed nothing (agreement 1, ok),
    but the file's decisions differ from the Keras model's, and the report says by how much."""
    m = Manifest.load(tiny_export / "manifest.json")
    p = np.linspace(0.01, 0.99, 200)
    cal = apply_temperature(p, m.temperature)
    labels = (np.arange(200) % 2).astype(np.int32)
    below = float(np.mean(cal < m.threshold))  # move the threshold past 20% of the outputs
    moved = float(np.quantile(cal, below + 0.2 if below < 0.7 else below - 0.2))
    r = compare("tflite_int8", p, p.copy(), labels, m, FORMATS["tflite_int8"].tolerance,
                threshold=moved)
    assert r.ok and r.agreement == 1.0 and r.max_abs_diff == 0.0
    expected = np.mean((cal >= moved) == (cal >= m.threshold))
    assert r.decision_agreement == pytest.approx(expected) and r.decision_agreement < 0.99


def test_exporting_the_same_model_again_gives_the_same_bytes(tiny_model_path, tmp_path):
    """Reproducible files: the embedded manifest leaves out the export time, so a re-export
    of an unchanged model matches the recorded sha256 (make shipped vs tests/golden)."""
    import keras

    from core.atomic import sha256_file
    from edge.manifest import Manifest, QualityGate, read_embedded
    from export.pipeline import export_model
    from tests.fixtures_export import TINY_CALIBRATION, synthetic_arrays, tiny_operating_rule

    cal, _ = synthetic_arrays(TINY_CALIBRATION, seed=11)
    model = keras.saving.load_model(tiny_model_path, compile=False)
    for out in (tmp_path / "a", tmp_path / "b"):
        export_model(model, out, formats="tflite_int8,onnx_int8", calibration=cal,
                     manifest=Manifest(threshold=0.5, trained_on="synthetic blobs"),
                     min_calibration=TINY_CALIBRATION, operating=tiny_operating_rule(),
                     log=lambda msg: None, quality=QualityGate(enabled=False))
    for name in ("model_int8.tflite", "model_int8.onnx"):
        assert read_embedded(tmp_path / "a" / name).created == ""
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name), name
    assert Manifest.load(tmp_path / "a" / "manifest.json").created  # the sidecar keeps the time
