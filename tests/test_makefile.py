"""The Makefile's contracts, read from ``make -n`` (what make would run, nothing executed)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _dry_run(target: str) -> str:
    # run from `make test`, the parent's MAKELEVEL/MAKEFLAGS would add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-n", "-B", "--no-print-directory", target], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout


def test_shipped_compares_golden_predictions_and_never_rewrites_them():
    cmds = _dry_run("shipped")
    assert "golden_shipped --write" not in cmds
    assert "tests/test_shipped_model.py" in cmds.splitlines()[-1]  # the re-ship is checked last


def test_golden_is_the_separate_step_that_rewrites_them():
    assert "tests.golden_shipped --write" in _dry_run("golden")
