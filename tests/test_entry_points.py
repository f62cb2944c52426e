"""The one console command, ``skinlesion``, its subcommands and the scripts they stand for.

Each subcommand must answer ``--help`` (exit 0) both as ``skinlesion NAME`` and as
``python <folder>/<script>.py``, with the same help; no script may import another script (they
share library modules instead).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from skinlesion.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Files run as `python <folder>/<name>.py`: they hold a main() and patch sys.path for that.
SCRIPT_FILES = sorted(p for p in ROOT.glob("*/*.py")
                      if "if __package__ in (None, \"\")" in p.read_text())


def test_one_command_lists_every_subcommand():
    assert SCRIPTS == {"skinlesion": "skinlesion.cli:main"}
    installed = shutil.which("skinlesion", path=str(Path(sys.executable).parent))
    assert installed, f"skinlesion not installed in {Path(sys.executable).parent}: run make setup"
    proc = subprocess.run([installed, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "not a medical device" in proc.stdout
    listed = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("  ")
              and not ln.startswith("   ")]
    assert listed == list(COMMANDS) == ["train", "evaluate", "export", "classify", "bench",
                                        "app", "card"]
    bad = subprocess.run([installed, "trian"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown command 'trian'" in bad.stderr and "train" in bad.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_help_is_its_scripts(name):
    """``skinlesion NAME --help`` and ``python SCRIPT --help`` print the same help, each with
    the name it was run by."""
    installed = shutil.which("skinlesion", path=str(Path(sys.executable).parent))
    script = COMMANDS[name].script
    outs = {}
    for prog, cmd in ((f"skinlesion {name}", [installed, name, "--help"]),
                      (f"python {script}", [sys.executable, str(ROOT / script), "--help"])):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "100"})
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {prog} "), \
            (cmd, proc.stdout[:200], proc.stderr[-500:])
        outs[prog] = proc.stdout.split("\n\n", 1)[1]  # all but the usage line(s)
    assert len(set(outs.values())) == 1


def test_every_script_names_itself_through_program():
    """Every parser's usage line comes from ``core.helpformat.program`` (how it was run)."""
    missing = [p.relative_to(ROOT).as_posix() for p in SCRIPT_FILES
               if f'program("{p.relative_to(ROOT).as_posix()}")' not in p.read_text()]
    assert missing == []


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
