"""``benchmarks/web.py`` writes rows in the benchmark report's fixed format (a smoke run:
the numbers are not checked here; docs/web.md has measured ones and the command)."""
from __future__ import annotations

import json

import pytest

from benchmarks import web
from benchmarks.latency_report import E2E_KEYS, ROW_KEYS
from tests.test_web import MODEL, web_app  # noqa: F401 (the prerequisites check)

pytestmark = pytest.mark.web


def test_web_benchmark_rows(tmp_path, web_app):  # noqa: F811
    rc = web.main(["--model", str(MODEL), "--threads", "1,2", "--runs", "5", "--warmup", "1",
                   "--camera-seconds", "1",
                   "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "report.json").read_text())
    assert rc == 0, doc["rows"]
    assert [(r["runtime"], r["threads"], r["status"]) for r in doc["rows"]] == \
        [(web.RUNTIME, 1, "ok"), (web.RUNTIME, 2, "ok")]
    assert all(tuple(r) == ROW_KEYS and r["runs"] == 5 and r["p50_ms"] > 0 for r in doc["rows"])
    assert all(tuple(r) == E2E_KEYS and r["camera_fps"] > 0 for r in doc["e2e"])
    md = (tmp_path / "report.md").read_text()
    assert "| onnx_int8 | onnxruntime-web-wasm | 2 |" in md and "not a medical device" in md
