"""The page prints probabilities and thresholds as the Python runner does: cut, never rounded up.

Runs web/src/digits.js (the file the page loads) in Node on the same values as core/digits.py.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from core.digits import down

pytestmark = pytest.mark.web
SRC = Path(__file__).resolve().parents[1] / "web" / "src"
NODE_SCRIPT = """
import { readFileSync } from "node:fs";
const { cut } = await import(process.argv[1] + "/digits.js");
const jobs = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(jobs.map(([x, d]) => cut(x, d))));
"""


def _values() -> list[float]:
    rng = random.Random(0)
    fixed = [0.0, 1.0, 0.5, 0.29, 0.96785, 0.16827416710450466, 37 / 40 - 38 / 40, 1 / 3,
             0.9999999999999, 1e-13, -0.00001, 123.456, 0.1 + 0.2]
    fractions = [rng.randint(0, n) / n for n in (40, 66, 284, 633, 684) for _ in range(200)]
    return fixed + fractions + [rng.random() for _ in range(2000)]


def test_page_cuts_like_python(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the web tests need Node.js 20 (apt-get install nodejs)",
                    pytrace=False)
    jobs = [(x, d) for x in _values() for d in (0, 2, 3, 4)]
    res = subprocess.run([node, "--input-type=module", "-e", NODE_SCRIPT, SRC.as_uri()],
                         input=json.dumps(jobs), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    bad = [(x, d, g, down(x, d)) for (x, d), g in zip(jobs, got) if g != down(x, d)]
    assert not bad, f"{len(bad)} of {len(jobs)} differ, e.g. {bad[:5]}"
