"""Plan and run every benchmark case, then join cost, accuracy, peak and Pi 4 estimates.

Order: matmul peak per thread count, model cost, the reference build, then per thread count
every artifact (yours and the reference, back to back so they see the same machine state),
the Keras baselines and finally the end-to-end cases. Each case runs in its own child
process (``benchmarks.runner``); Ctrl-C stops after the current case and returns what has
been measured (``interrupted=True``).

Example:
    >>> cfg = BenchConfig(artifacts=Path("runs/demo/export"), threads=[1, 2])   # doctest: +SKIP
    >>> run_suite(cfg).rows[0]["p50_ms"]                                        # doctest: +SKIP
    0.84
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks import reference_model as ref
from benchmarks.artifacts import Artifact, accuracy_index, find_artifacts
from benchmarks.latency_report import E2E_KEYS, make_row
from benchmarks.runner import run_child
from core.atomic import sha256_file
from edge.runtimes import BACKENDS, PIP_NAME, TOP_MODULE

DEFAULT_RUNTIMES = {"tflite": ("litert", "tflite-runtime"), "onnx": ("onnxruntime",)}
OPTIONAL_RUNTIMES = {"tflite": ("tensorflow",), "onnx": ()}  # only when asked for by name


@dataclass
class BenchConfig:
    artifacts: Path
    formats: list[str] | None = None
    runtimes: list[str] | None = None  # None: every installed default runtime
    threads: list[int] = field(default_factory=lambda: [1, 2, 4])
    runs: int = 200
    warmup: int = 20
    min_seconds: float = 1.0
    time_budget: float | None = None
    keras_model: Path | None = None
    keras_budget: float = 10.0
    reference: bool = True
    reference_size: int = 224
    images: list[Path] = field(default_factory=list)
    frames: int = 120
    peak_seconds: float = 0.3  # per matmul size, per thread count
    case_timeout: float = 600.0


@dataclass
class BenchResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    e2e: list[dict[str, Any]] = field(default_factory=list)
    peaks: dict[int, float] = field(default_factory=dict)
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    done: int = 0
    planned: int = 0


class Progress:
    """A dependency-free progress bar on stderr (one line per case when not a terminal)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width, self.t0 = total, width, time.perf_counter()
        self.stream = stream or sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def show(self, i: int, label: str) -> None:
        el = time.perf_counter() - self.t0
        fill = int(self.width * i / max(self.total, 1))
        line = (f"[{'#' * fill}{'.' * (self.width - fill)}] {i}/{self.total} "
                f"{el:5.0f}s  {label}")
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(110))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def installed_runtimes() -> set[str]:
    """Backends whose package is installed, found without importing them (TensorFlow alone
    would add ~500 MB to this parent process, and children inherit nothing from it)."""
    return {b for b in BACKENDS if importlib.util.find_spec(TOP_MODULE[b]) is not None}


def runtimes_for(art: Artifact, requested: list[str] | None,
                 available: set[str]) -> list[tuple[str, str]]:
    """``[(runtime, error)]`` to run ``art`` with; ``error`` is set for a requested missing one."""
    fam = art.family
    if requested:
        names = [r for r in DEFAULT_RUNTIMES[fam] + OPTIONAL_RUNTIMES[fam] if r in requested]
    else:
        names = [r for r in DEFAULT_RUNTIMES[fam] if r in available] or [DEFAULT_RUNTIMES[fam][0]]
    return [(r, "" if r in available else f"runtime '{r}' is not installed: pip install "
             f"{PIP_NAME[r]}") for r in names]


class Suite:
    """Holds the plan and the result while the cases run."""

    def __init__(self, cfg: BenchConfig):
        self.cfg, self.res = cfg, BenchResult()
        self.available = installed_runtimes()
        self.artifacts = find_artifacts(cfg.artifacts, cfg.formats)
        self.ref_artifacts: list[Artifact] = []
        self.acc, self.acc_info = accuracy_index(cfg.artifacts)
        self.tmp = Path(tempfile.mkdtemp(prefix="skinlesion-bench-"))
        self.video: str | None = None
        if cfg.runtimes is None:
            fams = {a.family for a in self.artifacts}
            for r in sorted({r for f in fams for r in DEFAULT_RUNTIMES[f]} - self.available):
                self.res.notes.append(f"runtime '{r}' not installed, not measured "
                                      f"(pip install {PIP_NAME[r]})")

    # ------------------------------------------------------------------ plan
    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        c, tasks = self.cfg, []
        for t in c.threads:
            tasks.append((f"matmul peak {t}t", lambda t=t: self._peak(t)))
        tasks.append(("model cost", lambda: self._cost(self.artifacts, "model")))
        if c.reference:
            tasks.append(("reference build", self._build_reference))
        for t in c.threads:
            for art in self.artifacts:
                for rt, err in runtimes_for(art, c.runtimes, self.available):
                    tasks.append((f"{art.format} {rt} {t}t",
                                  lambda a=art, r=rt, e=err, t=t: self._latency(a, r, t, e)))
            if c.reference:
                for f in ref.REFERENCE_FORMATS:
                    tasks.append((f"reference {f} {t}t", lambda f=f, t=t: self._ref_latency(f, t)))
            if c.keras_model:
                for mode in ("predict", "call"):
                    tasks.append((f"keras {mode} {t}t", lambda m=mode, t=t: self._keras(m, t)))
        if c.images:
            tasks.append(("camera video", self._video))
            for art in self.artifacts:
                for rt, err in runtimes_for(art, c.runtimes, self.available)[:1]:
                    tasks.append((f"e2e {art.format} {rt}", lambda a=art, r=rt, e=err:
                                  self._e2e(a, r, self._fastest_threads(a, r), e)))
        return tasks

    def run(self, progress: bool = True) -> BenchResult:
        tasks = self.plan()
        self.res.planned = len(tasks)
        bar = Progress(len(tasks)) if progress else None
        try:
            for i, (label, fn) in enumerate(tasks):
                if bar:
                    bar.show(i, label)
                fn()
                self.res.done = i + 1
            if bar:
                bar.show(len(tasks), "done")
        except KeyboardInterrupt:
            self.res.interrupted = True
            self.res.notes.append(f"interrupted (Ctrl-C) after {self.res.done} of "
                                  f"{len(tasks)} cases: the report holds what was measured")
        finally:
            if bar:
                bar.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        from benchmarks.derive import derive

        derive(self.res, self.acc, self.acc_info)
        return self.res

    # ------------------------------------------------------------------ tasks
    def _timing_spec(self, budget: float | None = None) -> dict[str, Any]:
        c = self.cfg
        return {"runs": c.runs, "warmup": c.warmup, "min_seconds": c.min_seconds,
                "time_budget": budget if budget is not None else c.time_budget}

    def _peak(self, t: int) -> None:
        r = run_child("peak", {"seconds": self.cfg.peak_seconds}, t, self.cfg.case_timeout)
        if r.get("error"):
            self.res.notes.append(f"matmul peak at {t} threads failed: {r['error']}")
        else:
            self.res.peaks[t] = r["peak_gmacs"]

    def _cost(self, arts: list[Artifact], key: str) -> None:
        usable = [a for a in arts if not a.error]
        order = sorted(usable, key=lambda a: (a.family != "tflite", "fp32" not in a.format))
        for a in order:  # the first graph that can be counted gives the model's cost
            r = run_child("cost", {"path": str(a.path)}, 1, self.cfg.case_timeout)
            if not r.get("error"):
                self.res.costs[key] = r
                return
        self.res.notes.append(f"could not count {key} MACs/params "
                              f"({r['error'] if usable else 'no usable artifact'})")

    def _build_reference(self) -> None:
        size = self.cfg.reference_size
        r = run_child("reference", {"size": size}, None, self.cfg.case_timeout)
        if r.get("error"):
            self.res.notes.append(f"no Pi 4 estimates: the MobileNetV2 reference is unavailable "
                                  f"({r['error']})")
            return
        self.res.reference = {**r, "pi4_ms": ref.PI4_MS, "source": ref.PI4_SOURCE}
        for f, p in r["files"].items():
            path = Path(p)
            self.ref_artifacts.append(Artifact(f, path, ref.REFERENCE_NAME, "reference",
                                               sha256_file(path), path.stat().st_size))
        self._cost(self.ref_artifacts, "reference")

    def _row(self, art: Artifact, runtime: str, threads: int, r: dict[str, Any]) -> None:
        self.res.rows.append(make_row(
            role=art.role, model=art.model, format=art.format, runtime=runtime, threads=threads,
            file=art.path.name, sha256=art.sha256, size_mb=art.bytes / 1e6, **r))

    def _latency(self, art: Artifact, runtime: str, threads: int, err: str = "") -> None:
        if art.error or err:
            return self._row(art, runtime, threads, {"error": art.error or err})
        spec = {"path": str(art.path), "backend": runtime, **self._timing_spec()}
        self._row(art, runtime, threads, run_child("runtime", spec, threads,
                                                   self.cfg.case_timeout))

    def _ref_latency(self, fmt: str, threads: int) -> None:
        """The reference on every TFLite runtime the model runs on (LiteRT at least)."""
        for art in (a for a in self.ref_artifacts if a.format == fmt):
            names = [r for r, err in runtimes_for(art, self.cfg.runtimes, self.available)
                     if not err]
            for rt in names or ["litert"]:
                self._latency(art, rt, threads)

    def _keras(self, mode: str, threads: int) -> None:
        path = Path(self.cfg.keras_model)
        art = Artifact("keras", path, self.artifacts[0].model if self.artifacts else path.stem,
                       "baseline", "", path.stat().st_size if path.is_file() else 0)
        spec = {"path": str(path), "mode": mode, **self._timing_spec(self.cfg.keras_budget)}
        r = run_child("keras", spec, threads, self.cfg.case_timeout)
        self._row(art, f"keras-{mode}", threads, r)

    def _video(self) -> None:
        from benchmarks.e2e import write_video

        try:
            self.video = str(write_video(self.cfg.images, self.tmp / "camera.mp4",
                                         frames=self.cfg.frames))
        except Exception as e:  # noqa: BLE001 - no video only drops the camera column
            self.res.notes.append(f"camera loop not measured: {e}")

    def _fastest_threads(self, art: Artifact, runtime: str) -> int:
        """The thread count with the lowest p50 for this artifact (the sweep's maximum if none)."""
        ok = [r for r in self.res.rows if r["status"] == "ok" and r["role"] == art.role
              and r["format"] == art.format and r["runtime"] == runtime]
        return min(ok, key=lambda r: r["p50_ms"])["threads"] if ok else max(self.cfg.threads)

    def _e2e(self, art: Artifact, runtime: str, threads: int, err: str) -> None:
        base = {"model": art.model, "format": art.format, "runtime": runtime, "threads": threads}
        if art.error or err:
            self.res.e2e.append(make_row(E2E_KEYS, **base, error=art.error or err))
            return
        spec = {"path": str(art.path), "backend": runtime,
                "images": [str(p) for p in self.cfg.images], "video": self.video}
        r = run_child("e2e", spec, threads, self.cfg.case_timeout)
        self.res.e2e.append(make_row(E2E_KEYS, **{**r, **base}))


def run_suite(cfg: BenchConfig, progress: bool = True) -> BenchResult:
    """Run every planned case; see the module docstring."""
    cfg.threads = sorted({max(1, min(t, os.cpu_count() or 1)) for t in cfg.threads})
    return Suite(cfg).run(progress)
