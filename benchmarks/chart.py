"""The report chart: p50 latency per format and thread count (p90 as whiskers), with accuracy.

One group of bars per format (fastest runtime per format and thread count); the export
accuracy of that artifact is written above its group. Needs matplotlib (the ``bench``
extra); without it ``write_chart`` returns ``None`` and the report says so.

Example:
    >>> write_chart(doc["rows"], Path("runs/demo/bench/latency.png"))      # doctest: +SKIP
    PosixPath('runs/demo/bench/latency.png')
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.atomic import atomic_path
from core.digits import down


def _best(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Fastest ok row per (format, threads), model and baseline rows only."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        if r["status"] != "ok" or r["role"] == "reference" or r["runtime"] == "keras-predict":
            continue
        k = (r["format"], r["threads"])
        if k not in best or r["p50_ms"] < best[k]["p50_ms"]:
            best[k] = r
    return best


def write_chart(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Grouped bar chart (log scale) written atomically as PNG; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    best = _best(rows)
    if not best:
        return None
    fmts = sorted({f for f, _ in best}, key=lambda f: min(r["p50_ms"] for (g, _), r in
                                                          best.items() if g == f))
    threads = sorted({t for _, t in best})
    width = 0.8 / len(threads)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(fmts) + 2), 4.2), dpi=120)
    for j, t in enumerate(threads):
        xs, p50, err = [], [], []
        for i, f in enumerate(fmts):
            r = best.get((f, t))
            if r:
                xs.append(i + (j - (len(threads) - 1) / 2) * width)
                p50.append(r["p50_ms"])
                err.append(max(r["p90_ms"] - r["p50_ms"], 0.0))
        ax.bar(xs, p50, width, yerr=[[0] * len(err), err], capsize=2, label=f"{t} thread(s)")
    for i, f in enumerate(fmts):
        acc = next((r["accuracy"] for (g, _), r in best.items() if g == f and r["accuracy"]),
                   None)
        top = max(r["p90_ms"] for (g, _), r in best.items() if g == f)
        ax.annotate(f"acc {down(acc, 3)}" if acc is not None else "acc -", (i, top),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(range(len(fmts)))
    ax.set_xticklabels([f"{f}\n{best[(f, threads[-1])]['runtime']}" if (f, threads[-1]) in best
                        else f for f in fmts], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency per image, ms (bar p50, whisker p90; log scale)")
    ax.set_title(title or "Latency per format and thread count (batch 1)", fontsize=10)
    ax.legend(fontsize=8)
    ax.margins(y=0.25)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
