"""Export pipeline: one Keras model -> every selected format, embedded manifest, parity, report.

``export_model`` is what ``export/convert.py`` and the benchmark call. Per format it runs the
registry's exporter in a hidden staging folder, opens the result with its real runtime to
read the input/output quantization, chooses its own operating threshold on the validation
images when given (``export/threshold.py``), embeds the manifest, and moves the file into place
atomically; then it writes ``manifest.json`` (with every artifact's sha256 and size), runs
parity on the test images when given, and writes ``export_report.{md,json}``. A failing
format becomes a failed row; the others still complete. Ctrl-C leaves no half-written file.

Example:
    >>> rows = export_model("runs/demo/model.keras", "runs/demo/export", calibration=x_cal,
    ...                     test_images=x_test, test_labels=y_test)        # doctest: +SKIP
    >>> [(r.name, r.status) for r in rows]                                 # doctest: +SKIP
    [('tflite_fp32', 'ok'), ...]
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from core.versions import package_versions as _package_versions
from core.atomic import atomic_write_bytes, sha256_file
from core.digits import down, pct
from edge.manifest import (MANIFEST_NAME, ArtifactInfo, Manifest, QualityGate, QuantParams,
                           read_embedded)
from edge.quality import gate_for_size
from edge.runtimes import open_runtime
from export.context import ExportContext, ExportError
from export.embed import embed_bytes, embeddable
from export.formats import FORMATS, Format, Tolerance, select_formats
from export.guard_attach import GuardData, attach_guard
from export.parity import ParityResult, check_artifact, keras_outputs, keras_probabilities
from export.report import REPORT_JSON, REPORT_MD, write_reports
from export.threshold import ArtifactThreshold, OperatingRule, artifact_threshold, choose
from export.validate import (MIN_CALIBRATION, check_calibration, check_outputs,
                             ensure_writable, image_input_size, load_keras_model, one_line)

STAGING_PREFIX = ".export-staging-"  # + pid: a folder whose process is gone is removed
_VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "tf2onnx", "onnx",
              "onnxruntime", "ai-edge-litert", "opencv-python-headless")


@dataclass
class FormatResult:
    """One row per format: what was written, how long it took, and whether it is usable."""

    name: str
    path: Path | None = None
    ok: bool = False  # exported, embedded and loadable by its runtime
    error: str = ""
    seconds: float = 0.0
    bytes: int = 0
    sha256: str = ""
    load_ms: float = 0.0
    operating: ArtifactThreshold | None = None  # this file's own threshold (validation)
    parity: ParityResult | None = None

    @property
    def threshold(self) -> float | None:
        return self.operating.threshold if self.operating else None

    @property
    def passed(self) -> bool:
        """Exported and (when checked) within its parity tolerance."""
        return self.ok and (self.parity is None or self.parity.ok)

    @property
    def status(self) -> str:
        if not self.ok:
            return "export failed"
        if self.parity is None:
            return "ok (parity not checked)"
        return "ok" if self.parity.ok else "parity failed"

    def to_row(self) -> dict:
        return {"format": self.name, "file": self.path.name if self.path else None,
                "path": str(self.path) if self.path else None, "ok": self.ok,
                "passed": self.passed, "status": self.status, "error": self.error,
                "seconds": round(self.seconds, 2), "bytes": self.bytes, "sha256": self.sha256,
                "load_ms": round(self.load_ms, 2),
                "operating": asdict(self.operating) if self.operating else None,
                "parity": self.parity.to_dict() if self.parity else None}


def package_versions() -> dict[str, str]:
    return _package_versions(_VERSIONED)


def export_model(model_or_path, out_dir: str | Path, formats: str | Iterable[str] | None = None,
                 calibration: np.ndarray | None = None, manifest: Manifest | None = None, *,
                 test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                 tolerances: dict[str, Tolerance] | None = None,
                 operating: OperatingRule | None = None, guard: GuardData | None = None,
                 quality: QualityGate | None = None,
                 min_calibration: int = MIN_CALIBRATION, opset: int = 17,
                 report_extra: dict | None = None,
                 log: Callable[[str], None] = print) -> list[FormatResult]:
    """Export ``model_or_path`` to ``formats`` in ``out_dir``; one ``FormatResult`` per format.

    Raises ``ExportError`` for problems that stop everything (bad model, no calibration
    images for int8, unwritable folder); per-format failures are rows with ``ok=False``.
    Parity runs when ``test_images``/``test_labels`` are given. With ``operating`` (validation
    images and the threshold rule), every artifact gets its own threshold in the manifest;
    without it, all use the manifest's (the float model's) threshold. With ``guard``
    (``export/guard_attach.py``), the out-of-distribution score is fitted and appended to the
    output vector of every artifact. Every manifest gets the quality gate: ``quality``, or
    by default the one fitted for its input size (``research/quality_fit.py``). ``report_extra``
    goes into ``export_report.json`` as it is (how the export was made).
    """
    if isinstance(model_or_path, (str, Path)):
        model, name = load_keras_model(model_or_path), str(model_or_path)
    else:
        model, name = model_or_path, getattr(model_or_path, "name", "model")
    size = image_input_size(model, name)
    try:
        selected = select_formats(formats)
    except ValueError as e:
        raise ExportError(str(e)) from e
    check_calibration(calibration, size, selected, min_calibration, log)
    out_dir = ensure_writable(Path(out_dir))
    manifest = _base_manifest(manifest, size, model)
    check_outputs(model, manifest, name)
    manifest.quality = quality if quality is not None else gate_for_size(min(size))
    if guard is not None:
        model = attach_guard(model, manifest, guard, log)
    if operating is not None:
        _check_keras_threshold(model, manifest, operating, log)
    for stale in (MANIFEST_NAME, REPORT_JSON, REPORT_MD):  # no sidecar may describe a mix
        (out_dir / stale).unlink(missing_ok=True)          # of old and new files mid-export
    _remove_orphaned_staging(out_dir, log)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir))
    try:
        ctx = ExportContext(model, calibration, staging / "work", opset,
                            tuple(manifest.pixel_range), manifest.color_order)
        ctx.workdir.mkdir()
        results = [_export_one(ctx, f, staging, manifest, operating, log) for f in selected]
        _install(results, staging, out_dir, manifest, log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_stale(out_dir, {r.name for r in results if r.ok}, log)
    manifest.save(out_dir / MANIFEST_NAME)
    if test_images is not None and test_labels is not None:
        _parity(model, results, manifest, test_images, test_labels, tolerances or {}, log,
                guard.nonlesions if guard is not None else None)
    write_reports(out_dir, results, manifest, report_extra)
    return results


def _base_manifest(manifest: Manifest | None, size: tuple[int, int], model) -> Manifest:
    m = copy.deepcopy(manifest) if manifest is not None else Manifest()
    m.input_height, m.input_width = size
    m.model_name = m.model_name or getattr(model, "name", "")
    m.versions = {**package_versions(), **m.versions}
    m.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    m.artifacts = {}
    m.guard = None  # only a guard fitted in this export describes these artifacts
    return m


def _check_keras_threshold(model, manifest: Manifest, rule: OperatingRule,
                           log: Callable[[str], None]) -> None:
    """Warn when the rule, on the Keras model's own outputs, does not give the manifest's threshold.

    They agree when the validation images are the ones ``train/evaluate.py`` used; if not, the
    files' thresholds come from other images than the float model's.
    """
    k = choose(rule.labels, keras_probabilities(model, rule.images, manifest),
               manifest.temperature, rule)
    if abs(k.threshold - manifest.threshold) > 1e-5:
        log(f"warning: on these {len(rule.labels)} validation images the Keras model's threshold "
            f"would be {down(k.threshold)}, not the run's {down(manifest.threshold)}: the images or "
            "the rule differ from train/evaluate.py's; re-run it, or pass --keras-threshold")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: leave its folder alone
        return True
    return True


def _remove_orphaned_staging(out_dir: Path, log) -> None:
    """Delete staging folders left by an export that was killed (its process is gone)."""
    for d in out_dir.glob(f"{STAGING_PREFIX}*"):
        pid = d.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if d.is_dir() and (not pid.isdigit() or not _pid_alive(int(pid))):
            shutil.rmtree(d, ignore_errors=True)
            log(f"removed {d.name}/ (left by an interrupted export)")


def _export_one(ctx: ExportContext, fmt: Format, staging: Path, manifest: Manifest,
                operating: OperatingRule | None, log: Callable[[str], None]) -> FormatResult:
    """Run one exporter into the staging folder; record its quantization (and threshold)."""
    res, raw, t0 = FormatResult(fmt.name), staging / fmt.filename, time.perf_counter()
    try:
        fmt.exporter(ctx, raw)
        rt = open_runtime(raw, fmt.runtime, threads=1)
        want = (1, manifest.input_height, manifest.input_width, 3)
        if tuple(rt.input.shape) != want:
            raise RuntimeError(f"artifact input shape {tuple(rt.input.shape)}, expected {want}")
        q = lambda s: QuantParams(s.dtype, float(s.scale), int(s.zero_point))  # noqa: E731
        art = ArtifactInfo(fmt.name, fmt.filename, runtime=fmt.runtime,
                           input=q(rt.input), output=q(rt.output))
        manifest.artifacts[fmt.name] = art
        if operating is not None:
            res.operating = artifact_threshold(raw, fmt.runtime, manifest, operating)
            art.threshold, art.threshold_rule = res.operating.threshold, res.operating.rule
            art.modality_thresholds = dict(res.operating.modality_thresholds)
        res.ok = True
    except ExportError as e:
        res.error = str(e)
    except Exception as e:  # one format's failure must not stop the others
        res.error = one_line(e)
    res.seconds = time.perf_counter() - t0
    if not res.ok:
        manifest.artifacts.pop(fmt.name, None)
    o = res.operating if res.ok else None
    log(f"  {fmt.name:<15} {'exported' if res.ok else 'FAILED: ' + res.error}"
        f" ({res.seconds:.1f} s)" + (f"; threshold {down(o.threshold)} (validation sensitivity "
                                     f"{down(o.val_sensitivity, 3)}, specificity "
                                     f"{down(o.val_specificity, 3)})" if o else ""))
    return res


def _install(results: list[FormatResult], staging: Path, out_dir: Path, manifest: Manifest,
             log: Callable[[str], None]) -> None:
    """Embed the manifest, rename into place atomically, hash, and reload with the runtime."""
    for res in results:
        if not res.ok:
            continue
        fmt, final = FORMATS[res.name], out_dir / FORMATS[res.name].filename
        try:
            atomic_write_bytes(final, embed_bytes(staging / fmt.filename, manifest))
            res.path, res.bytes, res.sha256 = final, final.stat().st_size, sha256_file(final)
            t0 = time.perf_counter()
            open_runtime(final, fmt.runtime, threads=1)
            res.load_ms = (time.perf_counter() - t0) * 1000
            back = read_embedded(final)  # what the edge runner will see without a sidecar
            if back is None or back.to_dict() != embeddable(manifest).to_dict():
                raise RuntimeError("edge.manifest.read_embedded does not read back the "
                                   "embedded manifest")
            art = manifest.artifacts[res.name]
            art.sha256, art.bytes = res.sha256, res.bytes
        except Exception as e:
            res.ok, res.error = False, f"embedding/writing failed: {one_line(e)}"
            manifest.artifacts.pop(res.name, None)
            final.unlink(missing_ok=True)
            log(f"  {res.name:<15} FAILED: {res.error}")


def _remove_stale(out_dir: Path, written: set[str], log: Callable[[str], None]) -> None:
    """Delete registry artifacts left by an earlier export: the new manifest doesn't cover them."""
    for fmt in FORMATS.values():
        p = out_dir / fmt.filename
        if fmt.name not in written and p.exists():
            p.unlink()
            log(f"  removed {p.name} from an earlier export (not part of this manifest)")


def _parity(model, results: list[FormatResult], manifest: Manifest, images: np.ndarray,
            labels: np.ndarray, tolerances: dict[str, Tolerance],
            log: Callable[[str], None], nonlesions: np.ndarray | None = None) -> None:
    log(f"Checking parity with Keras on {len(images)} test images"
        + (f" (guard: also {len(nonlesions)} non-lesion images)" if manifest.guard is not None
           and nonlesions is not None else ""))
    extra = nonlesions if manifest.guard is not None and nonlesions is not None else images[:0]
    vectors = keras_outputs(model, np.concatenate([images, extra]), manifest)
    p_keras = vectors[:len(images), 0]
    for res in results:
        if not res.ok:
            continue
        fmt = FORMATS[res.name]
        try:
            res.parity = check_artifact(res.path, fmt, manifest, images, labels, p_keras,
                                        tolerances.get(res.name, fmt.tolerance), vectors, extra)
        except Exception as e:
            res.ok, res.error = False, f"could not run for parity: {one_line(e)}"
            log(f"  {res.name:<15} FAILED: {res.error}")
            continue
        p = res.parity
        if not p.ok:
            res.error = "outside tolerance: " + "; ".join(p.failures)
        own = ("labels alone; ties within one int8 step agree" if manifest.output == "softmax"
               else "at its own threshold")
        log(f"  {res.name:<15} {'ok' if p.ok else 'FAILED'}: agreement {pct(p.agreement)} "
            f"({pct(p.decision_agreement)} {own}), "
            f"accuracy {down(p.accuracy)} (Keras {down(p.keras_accuracy)}), "
            f"max |dp| {p.max_abs_diff:.1e}"
            + (f"; guard agreement {pct(p.guard_agreement)}, test pass {pct(p.guard_test_pass)}"
               f", non-lesion reject {pct(p.guard_nonlesion_reject)}"
               if manifest.guard is not None else ""))
