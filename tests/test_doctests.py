"""Every ``>>>`` example in the packages runs here, one test per module.

Examples run from the repository root (some read ``models/``). An example that needs a
trained model, a dataset or a camera says ``# doctest: +SKIP``; every other one must pass.
Edge modules are collected like the rest; ``test_edge_notf.py`` checks they stay TF-free.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("skinlesion", "core", "edge", "export", "train", "benchmarks", "research")


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        names.append(pkg)
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / pkg)])]
    return names


@pytest.mark.parametrize("name", _modules())
def test_doctests(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
