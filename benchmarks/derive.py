"""Columns computed after the cases ran: cost, achieved GMAC/s, accuracy, Pi 4 estimate.

- ``gmacs`` = MACs per inference / p50 time; ``efficiency`` = ``gmacs`` / the float32 matmul
  peak measured at the same thread count (int8 kernels can exceed 100% of a float peak).
- ``accuracy``/``auc``: the export report's parity row with the same artifact sha256; the
  Keras baseline rows take the export report's Keras accuracy.
- ``pi4_est_ms`` = row p50 / reference p50 x published Pi 4 ms, the reference row having the
  same threads, the precision of the row (int8 formats vs the int8 reference, others vs
  fp32), and the same runtime when the reference ran on it, else LiteRT.

Example:
    >>> pi4_estimate(2.0, 8.0, "fp32")
    11.5
"""
from __future__ import annotations

from typing import Any

from benchmarks import reference_model as ref


def pi4_estimate(p50_ms: float, ref_p50_ms: float, precision: str) -> float:
    """Scale the published Pi 4 time of the reference by the measured ratio."""
    return p50_ms / ref_p50_ms * ref.PI4_MS[precision]


def _ref_lookup(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["format"], r["runtime"], r["threads"]): r for r in rows
            if r["role"] == "reference" and r["status"] == "ok"}


def derive(res: Any, acc: dict[str, dict[str, Any]], acc_info: dict[str, Any]) -> None:
    """Fill the derived columns of ``res.rows`` in place (``res`` is a ``BenchResult``)."""
    refs = _ref_lookup(res.rows)
    for row in res.rows:
        cost = res.costs.get("reference" if row["role"] == "reference" else "model") or {}
        row["params"], row["macs"] = cost.get("params"), cost.get("macs")
        if row["role"] == "baseline":
            row["accuracy"] = acc_info.get("keras_accuracy")
        elif row["sha256"] in acc:
            row["accuracy"], row["auc"] = acc[row["sha256"]]["accuracy"], acc[row["sha256"]]["auc"]
        p50 = row["p50_ms"]
        if row["status"] != "ok" or not p50:
            continue
        peak = res.peaks.get(row["threads"])
        row["peak_gmacs"] = peak
        if row["macs"]:
            row["gmacs"] = row["macs"] / (p50 * 1e6)
            row["efficiency"] = row["gmacs"] / peak if peak else None
        if row["role"] == "model":
            _pi4(row, refs)


def _pi4(row: dict[str, Any], refs: dict[tuple[str, str, int], dict[str, Any]]) -> None:
    prec = ref.precision_of(row["format"])
    fmt = ref.reference_format(row["format"])
    r = refs.get((fmt, row["runtime"], row["threads"])) or refs.get((fmt, "litert", row["threads"]))
    if r is None:
        return
    row["pi4_est_ms"] = pi4_estimate(row["p50_ms"], r["p50_ms"], prec)
    row["pi4_basis"] = (f"{row['p50_ms']:.3f} / {r['p50_ms']:.3f} ms ({fmt} {r['runtime']} "
                        f"{r['threads']}t) x {ref.PI4_MS[prec]:g} ms")
