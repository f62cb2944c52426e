"""Benchmark rows with fixed keys, and the report files: ``report.json`` and ``report.md``.

Every row of ``report.json["rows"]`` has exactly ``ROW_KEYS`` (missing values are ``null``),
one per (role, format, runtime, threads); a failure is a row with ``status="error"`` and
``error`` set. End-to-end rows (``report.json["e2e"]``) have exactly ``E2E_KEYS``.
Markdown tables are sorted by p50 (failed rows last).

Example:
    >>> row = make_row(format="tflite_int8", runtime="litert", threads=2, p50_ms=1.5)
    >>> tuple(row) == ROW_KEYS and row["status"]
    'ok'
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from core.atomic import atomic_write_text
from core.digits import down

SCHEMA = 1
ROW_KEYS = (
    "role", "model", "format", "runtime", "threads", "status", "error",
    "file", "sha256", "size_mb", "input_shape", "input_dtype",
    "load_ms", "first_ms", "warmup", "runs", "budget_hit",
    "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "ips",
    "peak_rss_mb", "rss_model_mb",
    "params", "macs", "gmacs", "peak_gmacs", "efficiency",
    "accuracy", "auc", "pi4_est_ms", "pi4_basis",
)
E2E_KEYS = (
    "model", "format", "runtime", "threads", "status", "error", "images", "bad_images",
    "decode_p50_ms", "preprocess_p50_ms", "invoke_p50_ms", "postprocess_p50_ms",
    "total_p50_ms", "total_p90_ms", "total_mean_ms", "files_per_s",
    "camera_frames", "camera_fps", "capture_p50_ms", "camera_source",
)
HEADLINE = ("format", "runtime", "threads", "p50 ms", "p90 ms", "FPS", "size", "accuracy",
            "Pi 4 est. ms")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def make_row(keys: tuple[str, ...] = ROW_KEYS, **values: Any) -> dict[str, Any]:
    """A row with exactly ``keys`` (unknown keys dropped, missing ones ``None``)."""
    row = {k: _clean(values.get(k)) for k in keys}
    row["status"] = "error" if values.get("error") else values.get("status") or "ok"
    return row


def sort_by_p50(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r.get("p50_ms") is None, r.get("p50_ms") or 0.0))


def num(v: Any, nd: int = 2) -> str:
    """A table cell: ``-`` for missing, ``nd`` decimals, 2 significant digits when smaller."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:.0f}"
        if 0 < abs(v) < 10.0 ** (1 - nd):
            return f"{v:.2g}"
        return f"{v:.{nd}f}"
    return str(v)


def _size(row: dict[str, Any]) -> str:
    mb = row.get("size_mb")
    return "-" if mb is None else f"{mb:.2f} MB" if mb >= 1 else f"{mb * 1000:.0f} KB"


def md_table(header: Iterable[str], lines: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return out


def headline_table(rows: list[dict[str, Any]]) -> list[str]:
    """format, runtime, threads, p50, p90, FPS, size, accuracy, Pi 4 estimate (sorted by p50)."""
    def cells(r: dict[str, Any]) -> list[Any]:
        return [r["format"], r["runtime"], r["threads"], num(r["p50_ms"], 3),
                num(r["p90_ms"], 3), num(r["ips"], 0), _size(r),
                "-" if r["accuracy"] is None else down(r["accuracy"]),
                num(r["pi4_est_ms"], 1)]
    ok = [r for r in sort_by_p50(rows) if r["status"] == "ok" and r["role"] != "reference"]
    return md_table(HEADLINE, map(cells, ok))


def full_table(rows: list[dict[str, Any]]) -> list[str]:
    """Every statistic of every successful row (sorted by p50)."""
    cols = ("role", "format", "runtime", "thr", "load ms", "first ms", "runs", "mean", "std",
            "min", "max", "p50", "p90", "p95", "p99", "inf/s", "peak RSS MB", "GMAC/s",
            "% of peak")

    def cells(r: dict[str, Any]) -> list[Any]:
        eff = "-" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%"
        return ([r["role"], r["format"], r["runtime"], r["threads"], num(r["load_ms"], 1),
                 num(r["first_ms"], 2), r["runs"]]
                + [num(r[k], 3) for k in ("mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms",
                                          "p90_ms", "p95_ms", "p99_ms")]
                + [num(r["ips"], 0), num(r["peak_rss_mb"], 0), num(r["gmacs"], 2), eff])
    return md_table(cols, map(cells, (r for r in sort_by_p50(rows) if r["status"] == "ok")))


def e2e_table(e2e: list[dict[str, Any]]) -> list[str]:
    """Stage p50s per format (sorted by total p50)."""
    cols = ("format", "runtime", "thr", "images", "decode", "preprocess", "invoke",
            "postprocess", "total p50", "total p90", "files/s", "camera FPS")

    def cells(r: dict[str, Any]) -> list[Any]:
        return ([r["format"], r["runtime"], r["threads"], r["images"]]
                + [num(r[f"{k}_ms"], 3) for k in ("decode_p50", "preprocess_p50", "invoke_p50",
                                                 "postprocess_p50", "total_p50", "total_p90")]
                + [num(r["files_per_s"], 0), num(r["camera_fps"], 1)])
    ok = sorted((r for r in e2e if r["status"] == "ok"), key=lambda r: r["total_p50_ms"] or 0)
    return md_table(cols, map(cells, ok))


def report_dict(result: Any, machine: dict[str, Any], warnings: list[str],
                method: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The whole ``report.json`` document (``result`` is a ``suite.BenchResult``)."""
    return {"schema": SCHEMA, **extra, "machine": machine, "warnings": warnings,
            "method": method, "interrupted": result.interrupted,
            "cases": {"done": result.done, "planned": result.planned},
            "peak_gmacs": {str(k): v for k, v in result.peaks.items()},
            "cost": result.costs, "reference": result.reference, "notes": result.notes,
            "rows": result.rows, "e2e": result.e2e}


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    text = json.dumps(doc, indent=2, default=str, allow_nan=False)
    return atomic_write_text(Path(path), text + "\n")


def load_report(path: Path) -> dict[str, Any]:
    """Read a ``report.json``; raises ``ValueError`` (one line) if it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ValueError(f"{path}: not a benchmark report.json (no 'rows' list)")
    return doc
