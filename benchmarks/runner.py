"""Measure one case in a fresh child process, so peak RSS and thread settings are its own.

The parent calls ``run_child(kind, spec, threads)``; the child (``python -m
benchmarks.runner KIND`` with the spec as JSON on stdin) measures and prints one result line
``@@BENCH@@{json}``. A Python exception in the child becomes ``{"error": "..."}``; a crash,
a timeout or a missing result line becomes the same, so a bad artifact is a failed row and
never stops the run. Kinds: ``runtime`` (an artifact through ``edge.runtimes``), ``keras``
(``model.predict`` / ``model(x)``), ``peak`` (matmul GMAC/s), ``cost`` (params/MACs),
``e2e`` (``benchmarks.e2e``) and ``reference`` (``benchmarks.reference_model``).

Example:
    >>> r = run_child("runtime", {"path": "model_int8.tflite", "backend": "litert",
    ...                           "runs": 50}, threads=2)                  # doctest: +SKIP
    >>> r["p50_ms"], r["peak_rss_mb"]                                      # doctest: +SKIP
    (0.41, 88.2)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
MARKER = "@@BENCH@@"
KINDS = ("runtime", "keras", "peak", "cost", "e2e", "reference")
# exceptions whose message is already one clear line naming the file and the fix
CLEAR_ERRORS = {"ModelLoadError", "RuntimeMissing", "ManifestError", "ImageError",
                "ReferenceUnavailable", "E2EError"}


# ----------------------------------------------------------------------------- parent side
def child_env(threads: int | None) -> dict[str, str]:
    """Environment for a child: repo importable, quiet TF, BLAS threads = ``threads``."""
    from benchmarks.cost import BLAS_THREAD_VARS

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if threads:
        for var in BLAS_THREAD_VARS:
            env[var] = str(threads)
    return env


def run_child(kind: str, spec: dict[str, Any], threads: int | None = None,
              timeout: float = 600.0) -> dict[str, Any]:
    """Run one measurement in a child process; always returns a dict (``error`` on failure)."""
    cmd = [sys.executable, "-m", "benchmarks.runner", kind]
    spec = {**spec, "threads": threads}
    try:
        proc = subprocess.run(cmd, input=json.dumps(spec), capture_output=True, text=True,
                              timeout=timeout, env=child_env(threads), cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s (raise --case-timeout)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
    return {"error": f"child process crashed ({why})" + (f": {tail[-1][:200]}" if tail else "")}


# ----------------------------------------------------------------------------- child side
def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` from ``/proc/self/status`` (``ru_maxrss`` would carry the parent's peak
    over fork + exec). Elsewhere ``ru_maxrss`` (bytes on macOS, KiB on other Unixes).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return _rss_mb()
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024


def _timed(fn: Callable[[], Any], spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.stats import LatencyStats, timed_loop

    budget = spec.get("time_budget")
    t0 = time.perf_counter()
    first, ms = timed_loop(fn, runs=int(spec.get("runs", 200)), warmup=int(spec.get("warmup", 20)),
                           min_seconds=float(spec.get("min_seconds", 0.0)), time_budget=budget)
    return {"first_ms": first, "warmup": int(spec.get("warmup", 20)),
            "timed_s": time.perf_counter() - t0, "budget_hit": bool(
                budget is not None and len(ms) < int(spec.get("runs", 200))),
            **LatencyStats.from_ms(ms).to_dict()}


def measure_runtime(spec: dict[str, Any]) -> dict[str, Any]:
    """Load ``spec['path']`` with ``spec['backend']`` at ``spec['threads']`` and time ``run``."""
    import numpy as np

    from edge.preprocess import to_model_input
    from edge.runtimes import open_runtime

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    rt = open_runtime(spec["path"], spec.get("backend", "auto"), spec.get("threads"))
    load_ms = (time.perf_counter() - t0) * 1000
    shape, inp = rt.input.shape, rt.input
    m = _manifest_or_default(spec["path"])
    img = np.random.default_rng(0).integers(0, 256, (shape[1], shape[2], 3), dtype=np.uint8)
    x = to_model_input(img, inp.dtype, inp.scale, inp.zero_point, m.pixel_range, m.color_order)
    out = _timed(lambda: rt.run(x), spec)
    return {"backend": rt.backend, "input_shape": list(shape), "input_dtype": inp.dtype,
            "load_ms": load_ms, **out, "peak_rss_mb": peak_rss_mb(),
            "rss_model_mb": peak_rss_mb() - rss0}


def _manifest_or_default(path):
    """The artifact's manifest (input range, colour order), or the defaults without one."""
    from edge.manifest import Manifest, ManifestError, find_manifest

    try:
        return find_manifest(path)
    except ManifestError:
        return Manifest()


def measure_keras(spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``model.predict`` (mode ``predict``) or ``model(x, training=False)`` (``call``)."""
    import numpy as np
    import tensorflow as tf

    threads = spec.get("threads")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    model = keras.models.load_model(spec["path"], compile=False)
    load_ms = (time.perf_counter() - t0) * 1000
    shape = (1,) + tuple(int(d) for d in model.input_shape[1:])
    x = np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)
    if spec.get("mode") == "predict":
        fn: Callable[[], Any] = lambda: model.predict(x, verbose=0)  # noqa: E731
    else:
        fn = lambda: np.asarray(model(x, training=False))  # noqa: E731
    out = _timed(fn, spec)
    return {"backend": f"keras-{spec.get('mode', 'call')}", "input_shape": list(shape),
            "input_dtype": "float32", "load_ms": load_ms, **out,
            "peak_rss_mb": peak_rss_mb(), "rss_model_mb": peak_rss_mb() - rss0}


def measure_peak(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.cost import matmul_peak_gmacs

    return {"peak_gmacs": matmul_peak_gmacs(seconds=float(spec.get("seconds", 0.3)))}


def measure_cost(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.cost import count_model

    return count_model(spec["path"]).to_dict()


def _dispatch(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "e2e":
        from benchmarks.e2e import measure_e2e

        return measure_e2e(spec)
    if kind == "reference":
        from benchmarks.reference_model import build_reference

        return build_reference(spec)
    return {"runtime": measure_runtime, "keras": measure_keras, "peak": measure_peak,
            "cost": measure_cost}[kind](spec)


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m benchmarks.runner KIND < spec.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m benchmarks.runner {{{','.join(KINDS)}}} < spec.json",
              file=sys.stderr)
        return 2
    try:
        result = _dispatch(argv[0], json.loads(sys.stdin.read() or "{}"))
    except Exception as e:  # noqa: BLE001 - every failure must come back as an error row
        msg = " ".join(str(e).split()) or type(e).__name__
        if type(e).__name__ not in CLEAR_ERRORS:
            msg = f"{type(e).__name__}: {msg}"
        result = {"error": msg[:400]}
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
