"""Latency statistics and the timed loop, in the manner of TFLite's ``benchmark_model``.

Percentiles use numpy's ``"linear"`` method (Hyndman & Fan type 7, numpy's default): for
sorted samples ``x[0..n-1]`` the q-th percentile is ``x[k] + f * (x[k+1] - x[k])`` with
``h = (n - 1) * q / 100``, ``k = floor(h)``, ``f = h - k``. ``std`` is the population
standard deviation (``ddof=0``), as ``benchmark_model`` reports it.

Example:
    >>> s = LatencyStats.from_ms([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    >>> s.p50, s.p90, s.p99
    (5.5, 9.1, 9.91)
    >>> first, ms = timed_loop(lambda: None, runs=5, warmup=1)
    >>> len(ms)
    5
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

PERCENTILE_METHOD = "linear"
MIN_BUDGET_RUNS = 10  # a time budget never cuts a case below this many timed runs


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed runs, all in milliseconds; ``ips`` = inferences per second."""

    runs: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    ips: float

    @classmethod
    def from_ms(cls, samples: Sequence[float]) -> "LatencyStats":
        """Statistics of a non-empty list of latencies in ms (order does not matter)."""
        a = np.asarray(samples, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError("need at least one finite latency sample")
        p50, p90, p95, p99 = (float(v) for v in
                              np.percentile(a, [50, 90, 95, 99], method=PERCENTILE_METHOD))
        mean = float(a.mean())
        return cls(runs=int(a.size), mean=mean, std=float(a.std(ddof=0)), min=float(a.min()),
                   max=float(a.max()), p50=p50, p90=p90, p95=p95, p99=p99,
                   ips=1000.0 / mean if mean > 0 else math.inf)

    def to_dict(self, suffix: str = "_ms") -> dict[str, float]:
        """Flat dict with ``_ms`` on every time key (``runs``/``ips`` unchanged)."""
        return {(k if k in ("runs", "ips") else k + suffix): v for k, v in asdict(self).items()}


def timed_loop(fn: Callable[[], object], runs: int = 200, warmup: int = 20,
               min_seconds: float = 0.0, time_budget: float | None = None
               ) -> tuple[float, list[float]]:
    """Call ``fn`` once (first inference), ``warmup`` times untimed, then time it.

    Timed runs continue until at least ``runs`` calls and ``min_seconds`` have passed; a
    ``time_budget`` (seconds of timed loop) stops earlier, but never below
    ``MIN_BUDGET_RUNS`` calls. Returns ``(first_call_ms, [timed ms...])``; each call is
    timed on its own with ``time.perf_counter``.
    """
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1000
    for _ in range(warmup):
        fn()
    out: list[float] = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        end = time.perf_counter()
        out.append((end - t) * 1000)
        elapsed = end - start
        if time_budget is not None and elapsed >= time_budget and len(out) >= MIN_BUDGET_RUNS:
            break
        if len(out) >= runs and elapsed >= min_seconds:
            break
    return first, out
