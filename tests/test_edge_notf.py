"""The edge package imports only numpy, OpenCV and one inference runtime: never TensorFlow.

A fresh interpreter imports every ``edge`` module and runs the real CLI on an exported
``.tflite`` (files and a video as camera) and, separately, an ``.onnx``; afterwards no
TensorFlow/Keras module may be loaded, the TFLite run must have used LiteRT (not
``tensorflow.lite``), and the only third-party packages loaded are numpy, cv2 and that
one runtime.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.fixtures_common import synth_lesion

ROOT = Path(__file__).resolve().parents[1]
EDGE_MODULES = sorted(p.stem for p in (ROOT / "edge").glob("*.py")
                      if p.stem not in ("__init__", "classify"))
FORBIDDEN = ("tensorflow", "keras", "tf_keras", "tensorboard", "tf2onnx", "onnx", "jax",
             "torch", "train", "export", "benchmarks")

DRIVER = """
import json, sys
import edge
{imports}
from edge.classify import main
args = json.loads(sys.argv[1])
codes = [main(a) for a in args]
top = {{n.split(".")[0] for n in sys.modules}}
third = sorted(top - set(sys.stdlib_module_names) - {{"edge", "core", "__main__"}})
print(json.dumps({{"codes": codes, "third_party": [t for t in third if not t.startswith("_")],
                  "forbidden": sorted(m for m in sys.modules
                                      if m.split(".")[0] in {forbidden!r})}}))
"""


def _run(argv_list: list[list[str]]) -> dict:
    code = DRIVER.format(imports="\n".join(f"import edge.{m}" for m in EDGE_MODULES),
                         forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(argv_list)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("notf")
    rng = np.random.default_rng(1)
    frames = [synth_lesion(rng, bool(i % 2), 64) for i in range(4)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(d / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 64))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return d, d / "clip.mp4"


@pytest.mark.parametrize("model,runtime", [("model_int8.tflite", "ai_edge_litert"),
                                           ("model_fp32.onnx", "onnxruntime")])
def test_runner_never_imports_tensorflow(tiny_export, media, tmp_path, model, runtime):
    images, video = media
    out = tmp_path / "r.json"
    m = str(tiny_export / model)
    res = _run([["-m", m, str(images), "-q", "--json", str(out)],
                ["-m", m, "--video", str(video), "--headless", "-q"]])
    assert res["codes"] == [0, 0]
    assert res["forbidden"] == [], f"edge imported {res['forbidden']}"
    assert res["third_party"] == sorted(["cv2", "numpy", runtime])
    doc = json.loads(out.read_text())
    assert doc["model"]["backend"] == ("litert" if runtime == "ai_edge_litert" else "onnxruntime")
    assert len(doc["predictions"]) == 4


def test_a_copy_of_edge_and_core_runs_alone(tiny_export, media, tmp_path):
    """The device case: copy ``edge/`` and ``core/`` (nothing else) and run the script."""
    import os
    import shutil

    for pkg in ("edge", "core"):
        shutil.copytree(ROOT / pkg, tmp_path / "pi" / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("model_int8.tflite", "manifest.json"):
        shutil.copy(tiny_export / f, tmp_path / "pi" / f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-v", "edge/classify.py", "-m", "model_int8.tflite",
                           str(media[0]), "-q", "--json", "r.json"], cwd=tmp_path / "pi",
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads((tmp_path / "pi" / "r.json").read_text())["predictions"]) == 4
    # -v lists every module file loaded: none from this checkout (an editable install could)
    assert f"{tmp_path}/pi/core/__init__.py" in proc.stderr
    assert str(ROOT / "core") not in proc.stderr and str(ROOT / "edge") not in proc.stderr


def test_core_needs_only_numpy():
    """``core`` is shared by every stage, the device included: stdlib and numpy only."""
    allowed = set(sys.stdlib_module_names) | {"numpy", "core"}
    pattern = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", re.MULTILINE)
    used = {m for p in (ROOT / "core").glob("*.py") for m in pattern.findall(p.read_text())}
    assert used <= allowed, sorted(used - allowed)


def test_edge_sources_have_no_training_imports():
    """Static check: only runtimes.py may name tensorflow, and only as the last fallback."""
    pattern = re.compile(r"^\s*(import|from)\s+(%s)\b" % "|".join(FORBIDDEN), re.MULTILINE)
    offenders = [p.name for p in (ROOT / "edge").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
    assert '"tensorflow": "tensorflow"' in (ROOT / "edge" / "runtimes.py").read_text()
