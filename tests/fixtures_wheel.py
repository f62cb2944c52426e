"""Wheel fixtures: the project built as one pure-Python wheel, once per test session.

``built_wheel`` is what ``pip wheel .`` makes (the shipped model inside as the
``skinlesion_models`` package); ``tests/test_wheel_install.py`` installs it into a fresh venv and
``tests/test_edge_aarch64.py`` into an emulated aarch64 userland. The build runs on a copy of the
files the wheel is made of, never in the checkout: an in-place setuptools build leaves ``build/``
and ``*.egg-info`` there, and a stale ``build/lib`` can slip deleted files into a later wheel.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the packaged model folder must carry (pyproject [tool.setuptools.package-data])
PACKAGED_FILES = ("model_int8.tflite", "model_int8.onnx", "manifest.json",
                  "export_report.json", "export_report.md")


def source_folders() -> list[str]:
    """Top-level folders the wheel is built from: pyproject's packages through its package-dir."""
    st = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    where = st.get("package-dir", {})
    return sorted({where.get(p.split(".")[0], p.split(".")[0]) for p in st["packages"]})


def build_wheel(dest: Path) -> Path:
    """Build the project's wheel into ``dest`` (a copy of its sources under ``dest/src``)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in source_folders():
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           "--wheel-dir", str(dest / "dist"), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = sorted((dest / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def packaged_names(wheel: Path) -> set[str]:
    """File names inside the wheel's ``skinlesion_models/`` folder."""
    with zipfile.ZipFile(wheel) as z:
        return {Path(n).name for n in z.namelist() if n.startswith("skinlesion_models/")}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """``skinlesion_edge-<version>-py3-none-any.whl`` holding the code and the shipped model."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))
