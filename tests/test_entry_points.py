"""The console commands of ``[project.scripts]`` and the scripts they stand for.

Each command must answer ``--help`` (exit 0) both as the installed command and as
``python <folder>/<script>.py``; no script may import another script (they share library
modules instead).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Files run as `python <folder>/<name>.py`: they hold a main() and patch sys.path for that.
SCRIPT_FILES = sorted(p for p in ROOT.glob("*/*.py")
                      if "if __package__ in (None, \"\")" in p.read_text())


def test_the_five_commands_exist():
    assert set(SCRIPTS) == {"skinlesion-train", "skinlesion-evaluate", "skinlesion-export",
                            "skinlesion-classify", "skinlesion-bench"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_command_and_script_answer_help(name):
    module = SCRIPTS[name].split(":")[0]
    script = ROOT / (module.replace(".", "/") + ".py")
    runs = [[sys.executable, str(script), "--help"]]
    installed = shutil.which(name, path=str(Path(sys.executable).parent))
    assert installed, f"{name} not installed in {Path(sys.executable).parent}: run make setup"
    runs.append([installed, "--help"])
    for cmd in runs:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (cmd, proc.stderr[-500:])


def test_no_script_imports_another_script():
    names = {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".") for p in SCRIPT_FILES}
    imports = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w, ]+)|import\s+([\w.]+))",
                         re.MULTILINE)
    offenders = []
    for p in SCRIPT_FILES:
        for frm, what, imp in imports.findall(p.read_text()):
            targets = {imp} if imp else {frm} | {f"{frm}.{w.strip()}" for w in what.split(",")}
            offenders += [f"{p.relative_to(ROOT)} imports {t}" for t in targets & names]
    assert offenders == []
