"""Compare a new report with an older one and mark regressions beyond measurement noise.

Rows match on (role, format, runtime, threads). A row is a ``regression`` when its p50 is
more than ``threshold`` (default 10%) slower *and* more than ``floor_ms`` (default 0.02 ms)
slower in absolute terms (tiny models jitter by a few microseconds); ``improved`` is the
mirror image; otherwise ``same``. Rows only in one report are ``new`` or ``missing``. A
changed artifact (different sha256) is flagged: then the difference is the model's, not
drift. Committed reference reports live in ``benchmarks/reference/<machine class>.json``.

Example:
    >>> old = {"rows": [{"role": "model", "format": "f", "runtime": "r", "threads": 1,
    ...                  "status": "ok", "p50_ms": 1.0, "sha256": "a"}]}
    >>> new = [dict(old["rows"][0], p50_ms=1.3)]
    >>> compare_rows(new, old)["matches"][0]["verdict"]
    'regression'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
DEFAULT_THRESHOLD = 0.10
DEFAULT_FLOOR_MS = 0.02


def row_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return (row.get("role") or "model", row["format"], row["runtime"], int(row["threads"]))


def verdict(old: float, new: float, threshold: float, floor_ms: float) -> str:
    """``regression``, ``improved`` or ``same`` for two p50 values in ms."""
    if new > old * (1 + threshold) and new - old > floor_ms:
        return "regression"
    if new < old / (1 + threshold) and old - new > floor_ms:
        return "improved"
    return "same"


def compare_rows(new_rows: list[dict[str, Any]], old: dict[str, Any],
                 threshold: float = DEFAULT_THRESHOLD, floor_ms: float = DEFAULT_FLOOR_MS,
                 old_path: str = "old report") -> dict[str, Any]:
    """The ``compare`` section of a report: one match per row key of either report."""
    olds = {row_key(r): r for r in old.get("rows", []) if r.get("status") == "ok"}
    news = {row_key(r): r for r in new_rows if r.get("status") == "ok"}
    matches = []
    for key in sorted(set(olds) | set(news), key=lambda k: (k[0], k[1], k[2], k[3])):
        o, n = olds.get(key), news.get(key)
        m: dict[str, Any] = dict(zip(("role", "format", "runtime", "threads"), key, strict=True))
        m.update(old_p50_ms=o and o["p50_ms"], new_p50_ms=n and n["p50_ms"], ratio=None)
        if o and n:
            m["ratio"] = n["p50_ms"] / o["p50_ms"] if o["p50_ms"] else None
            m["verdict"] = verdict(o["p50_ms"], n["p50_ms"], threshold, floor_ms)
            m["file_changed"] = bool(o.get("sha256") and n.get("sha256") and
                                     o["sha256"] != n["sha256"])
        else:
            m["verdict"] = "new" if n else "missing"
        matches.append(m)
    machine = old.get("machine") or {}
    warnings = []
    if any(m.get("file_changed") for m in matches):
        warnings.append("some artifacts changed since the old report: their differences are "
                        "the model's, not drift (the reference rows are the drift signal)")
    return {"old": old_path, "old_created": machine.get("timestamp"),
            "old_cpu": machine.get("cpu"), "threshold": threshold, "floor_ms": floor_ms,
            "warnings": warnings, "matches": matches,
            "regressions": sum(m["verdict"] == "regression" for m in matches)}


def machine_warnings(old: dict[str, Any], new_machine: dict[str, Any]) -> list[str]:
    """Warn when the old report came from a different CPU or core count."""
    om = old.get("machine") or {}
    out = []
    for key in ("cpu", "cores"):
        if om.get(key) is not None and om.get(key) != new_machine.get(key):
            out.append(f"old report was measured on a different machine ({key}: {om.get(key)} "
                       f"vs {new_machine.get(key)}): differences are not only drift")
    return out


def default_reference(machine_class: str) -> Path | None:
    """``benchmarks/reference/<machine_class>.json`` if it is committed."""
    p = REFERENCE_DIR / f"{machine_class}.json"
    return p if p.is_file() else None
