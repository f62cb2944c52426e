"""The file runner ``edge/classify.py`` on real exported artifacts (``tiny_export``, 32x32).

Every format is run through the CLI and compared with ``Classifier`` image by image; the
bad-input matrix runs as a real subprocess (exit code, one line per bad file, no traceback,
results for the good files written); model and usage errors give exit code 2 and one line.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.classifier import Classifier
from edge.classify import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, main
from edge.manifest import Manifest
from edge.runtimes import backend_available
from tests.fixtures_common import synth_lesion

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite",
          "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")


def _save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """benign/ and malignant/ synthetic lesions (64x64 JPEG and PNG; the runner resizes to 32)."""
    root = tmp_path_factory.mktemp("edge_images")
    rng = np.random.default_rng(7)
    for i in range(16):
        label = "malignant" if i % 2 else "benign"
        _save(root / label / f"{i}.{'png' if i % 4 < 2 else 'jpg'}",
              synth_lesion(rng, bool(i % 2), 64))
    return root


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    """The bad-input matrix as files: broken ones and odd-but-valid ones."""
    pil = pytest.importorskip("PIL.Image")
    d = tmp_path_factory.mktemp("edge_bad")
    rng = np.random.default_rng(3)
    good = _save(d / "ok_plain.jpg", synth_lesion(rng, True, 64))
    (d / "bad_zero.jpg").write_bytes(b"")
    (d / "bad_truncated.jpg").write_bytes(good.read_bytes()[:400])
    (d / "bad_text.jpg").write_text("not an image\n")
    bgra = np.dstack([cv2.cvtColor(synth_lesion(rng, False, 48), cv2.COLOR_RGB2BGR),
                      np.full((48, 48), 128, np.uint8)])
    cv2.imwrite(str(d / "ok_alpha.png"), bgra)
    cv2.imwrite(str(d / "ok_gray.png"), cv2.cvtColor(synth_lesion(rng, True, 40),
                                                     cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "ok_16bit.png"), synth_lesion(rng, False, 40).astype(np.uint16) * 257)
    pil.fromarray(synth_lesion(rng, True, 40)).convert("CMYK").save(d / "ok_cmyk.jpg")
    exif = pil.Exif()
    exif[0x0112] = 6
    pil.fromarray(synth_lesion(rng, False, 40)).save(d / "ok_exif.jpg", exif=exif)
    big = cv2.resize(synth_lesion(rng, True, 64), (5000, 5000), interpolation=cv2.INTER_NEAREST)
    _save(d / "ok_large.jpg", big)
    _save(d / "ok_1x1.png", np.full((1, 1, 3), 90, np.uint8))
    _save(d / "ok_läsion_日本.png", synth_lesion(rng, True, 64))
    return d


def _run_json(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "results.json"
    out.unlink(missing_ok=True)
    rc = main([*args, "--json", str(out), "-q"])
    return rc, json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("model", MODELS)
def test_every_format_through_the_cli_matches_the_classifier(tiny_export, image_dir, tmp_path,
                                                             model):
    path = tiny_export / model
    rc, doc = _run_json(tmp_path, "--model", str(path), str(image_dir))
    assert rc == EXIT_OK
    clf = Classifier(path)
    preds = doc["predictions"]
    assert len(preds) == 16 and doc["errors"] == []
    for p in preds:
        direct = clf.predict_file(p["source"])
        assert p["probability"] == direct.probability and p["label"] == direct.label
        assert p["threshold"] == clf.manifest.threshold and p["ms"] > 0
    assert doc["model"]["backend"] == ("onnxruntime" if model.endswith(".onnx") else "litert")
    assert len({p["label"] for p in preds}) == 2, "the tiny model's outputs must vary"
    s = doc["summary"]
    assert s["classified"] == 16 and s["bad"] == 0 and sum(s["counts"].values()) == 16
    assert s["mean_ms"] == pytest.approx(np.mean([p["ms"] for p in preds]))


def test_bad_input_matrix_as_a_real_process(tiny_export, bad_dir, tmp_path):
    """Each bad input: one line naming it; no traceback; every good input classified and written."""
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    missing = bad_dir / "bad_missing.jpg"
    proc = subprocess.run(
        [sys.executable, "edge/classify.py", "--model", str(tiny_export / "model_int8.tflite"),
         str(bad_dir), str(missing), "--json", str(js), "--csv", str(cs)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    bad = sorted(p.name for p in bad_dir.iterdir() if p.name.startswith("bad_")) + [missing.name]
    assert len(errors) == len(bad) == 4
    for name in bad:
        assert sum(name in ln for ln in errors) == 1, (name, errors)
    doc = json.loads(js.read_text(encoding="utf-8"))
    good = sorted(p.name for p in bad_dir.iterdir() if p.name.startswith("ok_"))
    assert sorted(Path(p["source"]).name for p in doc["predictions"]) == good
    assert sorted(Path(e["source"]).name for e in doc["errors"]) == sorted(bad)
    for name in good:  # the console shows a result line for each good input
        assert sum(name in ln for ln in proc.stdout.splitlines()) == 1, name
    rows = list(csv.DictReader(ln for ln in cs.read_text(encoding="utf-8").splitlines()
                               if not ln.startswith("#")))
    assert sorted(r["source"] for r in rows) == sorted(
        [p["source"] for p in doc["predictions"]] + [e["source"] for e in doc["errors"]])
    assert f"{len(good)} images classified" in proc.stdout and f"{len(bad)} bad" in proc.stdout


def test_outputs_carry_disclaimer_and_training_data(tiny_export, image_dir, tmp_path, capsys):
    js, cs = tmp_path / "o.json", tmp_path / "o.csv"
    assert main(["-m", str(tiny_export / "model_fp32.onnx"), str(image_dir / "benign"),
                 "--json", str(js), "--csv", str(cs)]) == EXIT_OK
    console = capsys.readouterr().out
    m = Manifest.load(tiny_export / "manifest.json")
    doc = json.loads(js.read_text())
    text = cs.read_text()
    for blob in (console, text, doc["disclaimer"]):
        assert "not a medical device" in blob.lower()
    assert m.trained_on in console and m.trained_on in text and doc["trained_on"] == m.trained_on
    header = [ln for ln in text.splitlines() if not ln.startswith("#")][0]
    assert header.split(",")[:4] == ["source", "status", "label", "probability"]
    assert "Summary: 8 images classified" in console and "mean" in console


def test_json_to_stdout_is_pure_json(tiny_export, image_dir, capsys):
    assert main(["-m", str(tiny_export / "model_int8.tflite"), str(image_dir), "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert len(doc["predictions"]) == 16 and "Summary" in cap.err


def test_glob_limit_and_threads(tiny_export, image_dir, tmp_path):
    rc, doc = _run_json(tmp_path, "-m", str(tiny_export / "model_int8.onnx"), "--threads", "2",
                        "--limit", "3", str(image_dir / "*" / "*.png"))
    assert rc == EXIT_OK
    names = [Path(p["source"]).name for p in doc["predictions"]]
    assert len(names) == 3 and all(n.endswith(".png") for n in names)
    assert doc["model"]["threads"] == 2


# ------------------------------------------------------------------ model and usage errors
def _corrupt(src: Path, dst: Path, how: str) -> Path:
    data = src.read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "text":
        data = b"this is not a model\n" * 20
    elif how == "flipped":  # bytes changed in the middle: loads, but is not the exported file
        b = bytearray(data)
        mid = len(b) // 3
        b[mid : mid + 64] = bytes(255 - v for v in b[mid : mid + 64])
        data = bytes(b)
    dst.write_bytes(data)
    return dst


@pytest.mark.parametrize("model,how,words", [
    ("model_int8.tflite", "truncated", "not a valid tflite model"),
    ("model_fp32.onnx", "truncated", "not a valid onnx model"),
    ("model_int8.tflite", "text", "not a valid tflite model"),
    ("model_int8.tflite", "flipped", "sha256"),
    ("model_fp32.onnx", "flipped", ""),  # a flipped protobuf may not even parse: any one line
])
def test_corrupt_model_is_one_line_exit_2(tiny_export, image_dir, tmp_path, capsys, model, how,
                                          words):
    d = tmp_path / "copy"
    d.mkdir()
    shutil.copy(tiny_export / "manifest.json", d / "manifest.json")
    bad = _corrupt(tiny_export / model, d / model, how)
    assert main(["-m", str(bad), str(image_dir)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and str(bad) in err
    assert words in err.lower()


def test_manifest_that_does_not_match_the_input_shape(tiny_export, image_dir, tmp_path, capsys):
    d = tmp_path / "mismatch"
    d.mkdir()
    shutil.copy(tiny_export / "model_int8.tflite", d)
    m = Manifest.load(tiny_export / "manifest.json")
    m.input_height = m.input_width = 64
    m.save(d / "manifest.json")
    assert main(["-m", str(d / "model_int8.tflite"), str(image_dir)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "does not match its manifest" in err and "(1, 32, 32, 3)" in err


def test_model_without_any_manifest_uses_the_embedded_one(tiny_export, image_dir, tmp_path):
    d = tmp_path / "alone"
    d.mkdir()
    shutil.copy(tiny_export / "model_int8.onnx", d)  # no manifest.json beside it
    rc, doc = _run_json(tmp_path, "-m", str(d / "model_int8.onnx"), str(image_dir))
    assert rc == EXIT_OK and len(doc["predictions"]) == 16


def test_missing_runtime_names_the_pip_package(tiny_export, image_dir, capsys):
    if backend_available("tflite-runtime"):
        pytest.skip("tflite-runtime is installed here, so it is not missing")
    rc = main(["-m", str(tiny_export / "model_int8.tflite"), "-b", "tflite-runtime",
               str(image_dir)])
    err = capsys.readouterr().err.strip()
    assert rc == EXIT_USAGE and err == ("error: backend 'tflite-runtime' is not installed: "
                                        "pip install tflite-runtime")


@pytest.mark.parametrize("argv,words", [
    ([], "nothing to classify"),
    (["--camera", "0", "x.jpg"], "not both"),
    (["--threads", "0", "x.jpg"], "--threads must be a positive"),
    (["--save", "o.mp4", "x.jpg"], "apply to --camera/--video"),
    (["-b", "onnxruntime", "x.jpg"], "cannot run a .tflite model"),
    (["--video", "v.mp4", "--roi", "2.5"], "--roi '2.5'"),
])
def test_usage_errors_exit_2(tiny_export, capsys, argv, words):
    assert main(["-m", str(tiny_export / "model_int8.tflite"), *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_default_model_missing_says_what_to_do(tmp_path, monkeypatch, capsys):
    # the lookup's error (edge/modelpath.py; its every case: tests/test_edge_modelpath.py)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKINLESION_MODEL", str(tmp_path / "gone"))
    assert main(["x.jpg"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SKINLESION_MODEL=") and "unset it" in err
    assert len(err.splitlines()) == 1


def test_help_documents_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes" in out and "usage or model error" in out


def test_unwritable_output_is_exit_2(tiny_export, image_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["-m", str(tiny_export / "model_int8.tflite"), str(image_dir),
               "--json", str(blocker / "sub" / "r.json")])
    assert rc == EXIT_USAGE and "cannot write results" in capsys.readouterr().err


# ------------------------------------------------------------------ runtime selection
_BLOCKING_DRIVER = """
import json, sys
for name in sys.argv[1].split(","):
    if name:
        sys.modules[name] = None  # makes `import name` raise ImportError: runtime not installed
from edge.classify import main
sys.exit(main(sys.argv[2:]))
"""


def _run_without(blocked: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCKING_DRIVER, ",".join(blocked), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_tflite_falls_back_to_tensorflow_lite_when_litert_is_missing(tiny_export, image_dir,
                                                                     tmp_path):
    pytest.importorskip("tensorflow")
    if backend_available("tflite-runtime"):
        pytest.skip("tflite-runtime is installed: it would be the fallback")
    model = tiny_export / "model_int8.tflite"
    out = tmp_path / "fallback.json"
    proc = _run_without(["ai_edge_litert"], "-m", str(model), str(image_dir), "-q",
                        "--json", str(out))
    assert proc.returncode == EXIT_OK, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["model"]["backend"] == "tensorflow"
    clf = Classifier(model)  # LiteRT: the int8 kernels agree exactly
    for p in doc["predictions"]:
        assert p["raw_probability"] == clf.predict_file(p["source"]).raw_probability


@pytest.mark.parametrize("model,blocked,package", [
    ("model_int8.tflite", ["ai_edge_litert", "tflite_runtime", "tensorflow"], "ai-edge-litert"),
    ("model_fp32.onnx", ["onnxruntime"], "onnxruntime"),
])
def test_no_runtime_installed_is_one_line_naming_the_package(tiny_export, image_dir, model,
                                                             blocked, package):
    proc = _run_without(blocked, "-m", str(tiny_export / model), str(image_dir))
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == EXIT_USAGE and len(err) == 1, proc.stderr
    assert err[0].startswith("error:") and err[0].endswith(f"pip install {package}")
