"""The default-model lookup (``edge/modelpath.py``): its order, its errors, and who uses it.

Order: ``--model``, ``$SKINLESION_MODEL``, ``./models/model_int8.tflite``, the packaged model
(``models/`` beside ``edge/``, else the installed ``skinlesion_models``). Real files in temporary
folders, the real environment variable and working directory; the installed-wheel case is
``tests/test_wheel_install.py``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.artifacts import default_artifacts_dir
from edge.classify import main
from edge.modelpath import (ENV, ORIGIN_ARG, ORIGIN_ENV, ORIGIN_LOCAL, ORIGIN_PACKAGED,
                            ModelNotFound, choose_model, choose_onnx, packaged_dir)
from tests.fixtures_common import synth_lesion

ROOT = Path(__file__).resolve().parents[1]


def _export(folder: Path) -> Path:
    """A folder shaped like an export: the two model files (contents do not matter here)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model_int8.tflite", "model_int8.onnx"):
        (folder / name).write_bytes(b"x")
    return folder


@pytest.fixture
def places(tmp_path, monkeypatch) -> dict[str, Path]:
    """One model at every step: --model, $SKINLESION_MODEL, ./models (the cwd), packaged."""
    p = {"arg": _export(tmp_path / "arg") / "model_int8.tflite",
         "env": _export(tmp_path / "env"),
         "cwd": tmp_path / "work",
         "packaged": _export(tmp_path / "site" / "skinlesion_models")}
    _export(p["cwd"] / "models")
    monkeypatch.chdir(p["cwd"])
    monkeypatch.setenv(ENV, str(p["env"]))
    return p


def test_each_step_wins_over_the_next(places, monkeypatch):
    pk = places["packaged"]
    got = choose_model(places["arg"], packaged=pk)
    assert (got.path, got.origin) == (places["arg"], ORIGIN_ARG)
    got = choose_model(packaged=pk)
    assert (got.path, got.origin) == (places["env"] / "model_int8.tflite", ORIGIN_ENV)
    monkeypatch.delenv(ENV)
    got = choose_model(packaged=pk)
    assert (got.path, got.origin) == (Path("models/model_int8.tflite"), ORIGIN_LOCAL)
    shutil.rmtree(places["cwd"] / "models")
    got = choose_model(packaged=pk)
    assert (got.path, got.origin) == (pk / "model_int8.tflite", ORIGIN_PACKAGED)
    monkeypatch.setenv(ENV, "")  # set but empty counts as unset
    assert choose_model(packaged=pk).origin == ORIGIN_PACKAGED


def test_the_variable_takes_a_file_or_a_folder_and_never_points_nowhere(places, monkeypatch):
    onnx = places["env"] / "model_int8.onnx"
    monkeypatch.setenv(ENV, str(onnx))
    assert choose_model(packaged=None).path == onnx
    monkeypatch.setenv(ENV, str(places["env"] / "missing.tflite"))
    with pytest.raises(ModelNotFound, match=f"{ENV}=.*missing.tflite.*unset it"):
        choose_model(packaged=places["packaged"])  # an explicit choice is never skipped


def test_nothing_found_names_every_step_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ModelNotFound) as e:
        choose_model(packaged=None)
    msg = str(e.value)
    assert "\n" not in msg
    for words in ("--model", f"${ENV}: not set", "./models/model_int8.tflite",
                  "skinlesion_models not installed", "set SKINLESION_MODEL", "export/convert.py"):
        assert words in msg, words
    # the lookup skips a packaged folder without the model (a partial copy)
    with pytest.raises(ModelNotFound):
        choose_model(packaged=tmp_path)


def test_a_clone_finds_its_own_models_folder():
    assert (ROOT / "models" / "model_int8.tflite").is_file(), "the shipped model is committed"
    assert packaged_dir() == ROOT / "models"


def test_the_browser_app_takes_the_onnx_file_of_the_same_export(places, monkeypatch):
    got = choose_onnx(packaged=places["packaged"])
    assert (got.path, got.origin) == (places["env"] / "model_int8.onnx", ORIGIN_ENV)
    monkeypatch.delenv(ENV)
    assert choose_onnx(packaged=None).path == Path("models/model_int8.onnx")
    explicit = places["arg"]  # --model is taken as given, even a .tflite (the app says no)
    assert choose_onnx(explicit).path == explicit


def test_bench_default_is_the_newest_run_else_the_default_models_folder(places, tmp_path):
    runs = tmp_path / "runs"
    assert default_artifacts_dir([runs]) == places["env"]  # no run: $SKINLESION_MODEL's folder
    newest = _export(runs / "r1" / "export")
    (newest / "manifest.json").write_text("{}")
    assert default_artifacts_dir([runs]) == newest


def test_help_lists_the_lookup_in_order(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    steps = ["model lookup", "1. --model PATH", f"2. ${ENV}", "3. ./models/model_int8.tflite",
             "4. the packaged model"]
    where = [out.find(s) for s in steps]
    assert -1 not in where and where == sorted(where), where


@pytest.mark.slow
def test_a_device_copy_finds_models_beside_edge_from_any_folder(tiny_export, tmp_path):
    """``edge/``, ``core/``, ``models/`` copied side by side (a Pi, no pip): run from anywhere."""
    pi = tmp_path / "pi"
    for pkg in ("edge", "core"):
        shutil.copytree(ROOT / pkg, pi / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pi / "models").mkdir()
    for f in ("model_int8.tflite", "manifest.json"):
        shutil.copy(tiny_export / f, pi / "models" / f)
    img = tmp_path / "lesion.png"
    cv2.imwrite(str(img), cv2.cvtColor(synth_lesion(np.random.default_rng(3), True, 64),
                                       cv2.COLOR_RGB2BGR))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ENV)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, shown in ((elsewhere, f"{pi}/models/model_int8.tflite ({ORIGIN_PACKAGED})"),
                       (pi, f"models/model_int8.tflite ({ORIGIN_LOCAL})")):  # as before
        proc = subprocess.run([sys.executable, str(pi / "edge" / "classify.py"), str(img),
                               "--no-guard"], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        first = proc.stdout.splitlines()[0]
        assert first.startswith(f"Model: {shown} [litert]"), first
        assert proc.stdout.splitlines()[1].startswith(("benign ", "malignant ")), proc.stdout
