"""What a new user does: build the wheel, install it (not editable) in a fresh venv, run elsewhere.

The wheel is pure Python and carries the shipped model as package data (``skinlesion_models``);
from a folder that has nothing of this project, the installed ``skinlesion classify`` classifies a
real test image with the packaged model, ``$SKINLESION_MODEL`` switches it to another export, and
``skinlesion bench`` benchmarks the packaged model. pip downloads the ``edge`` extra's packages
from PyPI (or its cache); nothing here reads this checkout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.fixtures_wheel import PACKAGED_FILES, packaged_names

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if sys.platform == "win32" else "bin"


def test_the_wheel_is_pure_python_and_carries_the_model(built_wheel):
    assert built_wheel.name.endswith("-py3-none-any.whl"), built_wheel.name
    assert set(PACKAGED_FILES) <= packaged_names(built_wheel)
    with zipfile.ZipFile(built_wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
    assert {"edge", "core", "benchmarks", "skinlesion_models"} <= tops
    assert not tops & {"tests", "models", "runs", "web", "research"}, tops  # the lab stays out
    print(f"{built_wheel.name}: {built_wheel.stat().st_size} bytes")


@pytest.fixture(scope="module")
def installed(built_wheel, tmp_path_factory) -> Path:
    """A fresh venv with ``<wheel>[edge]`` installed (not editable); its bin folder."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / BIN / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", f"{built_wheel}[edge]"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"fresh venv + pip install {built_wheel.name}[edge]: {time.perf_counter() - t0:.1f} s")
    return venv / BIN


def _user_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that could point at this checkout."""
    drop = ("PYTHONPATH", "PYTHONHOME", "SKINLESION_MODEL", "SKINLESION_DATA", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _real_image() -> Path:
    from train.data import DatasetNotFound, resolve_data_dir

    try:
        folder = resolve_data_dir() / "test" / "benign"
    except DatasetNotFound as e:
        pytest.skip(f"needs a real test image: {e}")
    images = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))
    if not images:
        pytest.skip(f"needs a real test image: no .jpg in {folder}")
    return images[0]


def _classify(bin_dir: Path, cwd: Path, image: Path, *flags: str, **env: str) -> list[str]:
    proc = subprocess.run([str(bin_dir / "skinlesion"), "classify", str(image), *flags], cwd=cwd,
                          env=_user_env(**env), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout.splitlines()


def test_installed_command_classifies_from_anywhere(installed, tmp_path, tiny_export):
    image = _real_image()
    site = Path(subprocess.run([str(installed / "python"), "-c",
                                "import skinlesion_models; print(skinlesion_models.__file__)"],
                               capture_output=True, text=True, check=True,
                               env=_user_env()).stdout.strip()).parent
    assert ROOT not in site.parents, site  # the installed copy, not this checkout
    lines = _classify(installed, tmp_path, image)
    assert lines[0].startswith(f"Model: {site / 'model_int8.tflite'} (packaged model) ["), lines[0]
    label = [ln for ln in lines if ln.endswith(str(image))]
    assert len(label) == 1 and label[0].split()[0] in ("benign", "malignant"), lines

    # another export through the environment variable (a folder holding model_int8.tflite)
    lines = _classify(installed, tmp_path, image, "--no-guard", SKINLESION_MODEL=str(tiny_export))
    assert lines[0].startswith(f"Model: {tiny_export / 'model_int8.tflite'} ($SKINLESION_MODEL) ["), \
        lines[0]
    label = [ln for ln in lines if ln.endswith(str(image))]
    assert len(label) == 1 and label[0].split()[0] in ("benign", "malignant"), lines


def test_installed_bench_times_the_packaged_model(installed, tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([str(installed / "skinlesion"), "bench", "--quick", "--no-e2e",
                           "--compare", "none", "--no-progress", "-r", "litert", "--out", str(out)],
                          cwd=tmp_path, env=_user_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "report.json").read_text())
    assert Path(doc["artifacts"]).name == "skinlesion_models"
    assert ROOT not in Path(doc["artifacts"]).parents
    assert [r["status"] for r in doc["rows"] if r["format"] == "tflite_int8"] == ["ok"]
