"""Statistics against hand-computed values, the timed loop, the Pi 4 formula, machine bits."""
from __future__ import annotations

import math
import time

import pytest

from benchmarks import machine
from benchmarks.derive import derive, pi4_estimate
from benchmarks.latency_report import make_row
from benchmarks.stats import LatencyStats, timed_loop
from benchmarks.suite import BenchResult


def test_percentiles_one_to_ten_hand_computed():
    # linear (type 7): h = (n - 1) q / 100 = 9q/100; value = x[floor h] + frac(h) * step (1)
    s = LatencyStats.from_ms([7, 3, 10, 1, 5, 2, 9, 4, 8, 6])  # order must not matter
    assert (s.runs, s.min, s.max) == (10, 1.0, 10.0)
    assert s.p50 == pytest.approx(5.5)   # h = 4.5 -> 5 + 0.5
    assert s.p90 == pytest.approx(9.1)   # h = 8.1 -> 9 + 0.1
    assert s.p95 == pytest.approx(9.55)  # h = 8.55
    assert s.p99 == pytest.approx(9.91)  # h = 8.91
    assert s.mean == pytest.approx(5.5)
    assert s.std == pytest.approx(math.sqrt(8.25))  # population: mean of squared deviations
    assert s.ips == pytest.approx(1000 / 5.5)


def test_percentiles_uneven_gaps_hand_computed():
    s = LatencyStats.from_ms([10.0, 0.5, 2.0, 1.0])  # sorted 0.5, 1, 2, 10
    assert s.p50 == pytest.approx(1.5)               # h = 1.5 -> 1 + 0.5 * (2 - 1)
    assert s.p90 == pytest.approx(7.6)               # h = 2.7 -> 2 + 0.7 * (10 - 2)
    assert s.p99 == pytest.approx(9.76)              # h = 2.97 -> 2 + 0.97 * 8
    assert s.mean == pytest.approx(3.375)


def test_single_sample_and_bad_input():
    s = LatencyStats.from_ms([4.0])
    assert (s.p50, s.p99, s.std, s.min, s.max) == (4.0, 4.0, 0.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        LatencyStats.from_ms([])
    with pytest.raises(ValueError):
        LatencyStats.from_ms([1.0, float("nan")])


def test_to_dict_keys():
    d = LatencyStats.from_ms([1, 2]).to_dict()
    assert set(d) == {"runs", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms",
                      "p95_ms", "p99_ms", "ips"}


def test_timed_loop_counts_first_warmup_and_runs():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.02)  # only the first call is slow

    first, ms = timed_loop(fn, runs=7, warmup=3)
    assert len(ms) == 7 and len(calls) == 1 + 3 + 7
    assert first >= 20 and max(ms) < 20


def test_timed_loop_min_seconds_and_budget():
    _, ms = timed_loop(lambda: None, runs=5, warmup=0, min_seconds=0.05)
    assert len(ms) > 5  # kept going past 5 runs until 50 ms had passed
    _, ms = timed_loop(lambda: time.sleep(0.005), runs=10_000, warmup=0, time_budget=0.1)
    assert 10 <= len(ms) < 60  # the budget cut 10 000 runs to ~20


def test_pi4_formula_and_reference_matching():
    assert pi4_estimate(2.0, 8.0, "fp32") == pytest.approx(2.0 / 8.0 * 46)
    assert pi4_estimate(1.0, 4.0, "int8") == pytest.approx(1.0 / 4.0 * 17)
    res = BenchResult()
    res.costs = {"model": {"params": 10, "macs": 2_000_000}, "reference": {"macs": 300e6}}
    res.peaks = {2: 40.0}
    ref = dict(role="reference", runtime="litert", threads=2)
    res.rows = [
        make_row(**ref, format="tflite_fp32", p50_ms=8.0),
        make_row(**ref, format="tflite_int8", p50_ms=4.0),
        make_row(role="model", format="tflite_int8", runtime="litert", threads=2, p50_ms=1.0,
                 sha256="aa"),
        make_row(role="model", format="onnx_fp32", runtime="onnxruntime", threads=2, p50_ms=2.0),
        make_row(role="model", format="tflite_fp16", runtime="litert", threads=1, p50_ms=2.0),
        make_row(role="model", format="onnx_int8", runtime="onnxruntime", threads=2,
                 error="boom"),
    ]
    derive(res, {"aa": {"accuracy": 0.9, "auc": 0.95}}, {})
    int8, onnx, fp16_1t, failed = res.rows[2:]
    assert int8["pi4_est_ms"] == pytest.approx(1.0 / 4.0 * 17) and int8["accuracy"] == 0.9
    assert onnx["pi4_est_ms"] == pytest.approx(2.0 / 8.0 * 46)  # vs the LiteRT fp32 reference
    assert "tflite_fp32 litert 2t" in onnx["pi4_basis"]
    assert fp16_1t["pi4_est_ms"] is None  # no reference at 1 thread: no estimate
    assert failed["pi4_est_ms"] is None and failed["status"] == "error"
    assert int8["gmacs"] == pytest.approx(2e6 / 1e-3 / 1e9)  # MACs / p50 seconds
    assert int8["efficiency"] == pytest.approx(2.0 / 40.0)
    assert res.rows[0]["macs"] == 300e6  # reference rows get the reference's cost


def test_throttle_flags_and_warnings():
    assert machine.decode_throttled(0x50005) == [
        "under-voltage now", "throttled now", "under-voltage occurred", "throttling occurred"]
    assert machine.decode_throttled(0) == []
    base = {"cores": 2, "busy_before": {"cpu_percent": 1.0, "load1": 0.1}}
    assert machine.warnings_for({**base, "governor": "performance"}) == []
    w = machine.warnings_for({**base, "governor": "powersave"})
    assert len(w) == 1 and "powersave" in w[0]
    w = machine.warnings_for({**base, "governor": "performance",
                              "busy_after": {"cpu_percent": 90.0, "load1": None}})
    assert len(w) == 1 and "busy after" in w[0] and "90%" in w[0]
    w = machine.warnings_for({**base, "governor": "performance",
                              "pi": {"throttled_flags": ["throttled now"], "soc_temp_c": 82.0}})
    assert len(w) == 2


def test_machine_record_fields():
    rec = machine.machine_record(busy_sample_s=0.0)
    for key in ("timestamp", "cpu", "cores", "governor", "os", "python", "versions",
                "machine_class", "busy_before"):
        assert key in rec
    assert rec["cores"] >= 1 and rec["versions"]["python"] == rec["python"]
    assert rec["machine_class"].endswith(f"{rec['cores']}core") or rec["pi"]
