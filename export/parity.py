"""Parity: run each artifact with its real runtime and compare it with the Keras model.

The artifact goes through ``edge.classifier.Classifier`` (the edge runner's own code path:
manifest, quantization with the artifact's own scale/zero point, dequantized output) on the
same preprocessed uint8 images the Keras model sees, so differences come only from the format.

Reported per artifact: accuracy, ROC AUC, sensitivity and specificity at the artifact's shipped
threshold (on the calibrated probability; its own when export chose one, see
``export/threshold.py``), max/mean |p - p_keras| on the raw sigmoid output, and two label
agreements with Keras: ``agreement``, both at the Keras model's threshold (what the format
changed; the tolerance checks it), and ``decision_agreement``, the file at its own threshold
(what a user of the file sees change; lower where its threshold sits among many outputs).

Example:
    >>> p_keras = keras_probabilities(model, x)                                    # doctest: +SKIP
    >>> r = check_artifact(path, FORMATS["tflite_int8"], manifest, x, y, p_keras)  # doctest: +SKIP
    >>> r.ok, r.agreement                                                          # doctest: +SKIP
    (True, 1.0)
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.classifier import Classifier
from edge.manifest import Manifest
from edge.preprocess import model_pixels
from export.formats import Format, Tolerance
from export.guard_attach import MIN_GUARD_AGREEMENT, guard_agreement
from core.metrics import apply_temperature, binary_metrics
from core.digits import down, pct


@dataclass
class ParityResult:
    """How one artifact compares with the Keras model on the same images."""

    format: str
    n: int
    backend: str
    threshold: float  # the artifact's; Keras labels use the manifest's
    load_ms: float
    accuracy: float
    roc_auc: float
    sensitivity: float
    specificity: float
    keras_accuracy: float
    agreement: float  # labels at the Keras threshold, both: the format's effect (checked)
    max_abs_diff: float
    mean_abs_diff: float
    decision_agreement: float = float("nan")  # the file at its own threshold vs Keras at its
    # guard (when fitted): same not-a-lesion decision as Keras on test + non-lesion images
    guard_agreement: float = float("nan")
    guard_max_abs_diff: float = float("nan")
    guard_test_pass: float = float("nan")  # this file's guard pass rate on the test lesions
    guard_nonlesion_reject: float = float("nan")  # and rejection rate on non-lesion images
    guard_min_agreement: float = float("nan")  # export/guard_attach.py MIN_GUARD_AGREEMENT
    tolerance: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def keras_outputs(model, images: np.ndarray, manifest: Manifest | None = None,
                  batch_size: int = 64) -> np.ndarray:
    """The Keras model's output vectors ``[N, C]`` for uint8 images, fed as the manifest's
    input (``edge.preprocess.model_pixels``; without a manifest: float32 0..255)."""
    if len(images) == 0:
        return np.zeros((0, 1))
    m = manifest or Manifest()
    x = model_pixels(images, m.pixel_range, m.color_order)
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float64).reshape(len(images), -1)


def keras_probabilities(model, images: np.ndarray, manifest: Manifest | None = None,
                        batch_size: int = 64) -> np.ndarray:
    """Raw sigmoid outputs (output index 0) of the Keras model for uint8 images."""
    return keras_outputs(model, images, manifest, batch_size)[:, 0]


def artifact_outputs(path: Path, backend: str, manifest: Manifest,
                     images: np.ndarray) -> tuple[np.ndarray, float, str]:
    """(dequantized output vectors ``[N, C]``, load time in ms, backend), image by image."""
    t0 = time.perf_counter()
    clf = Classifier(path, backend=backend, threads=None, manifest=manifest)
    load_ms = (time.perf_counter() - t0) * 1000
    rows = [clf.raw_outputs(clf.prepare(img)) for img in images]
    out = np.array(rows, np.float64).reshape(len(images), -1) if rows else np.zeros((0, 1))
    return out, load_ms, clf.backend


def artifact_probabilities(path: Path, backend: str, manifest: Manifest,
                           images: np.ndarray) -> tuple[np.ndarray, float, str]:
    """(raw probabilities at output index 0, load time in ms, backend) of one artifact."""
    out, load_ms, backend = artifact_outputs(path, backend, manifest, images)
    return out[:, 0], load_ms, backend


def compare(name: str, p_art: np.ndarray, p_keras: np.ndarray, labels: np.ndarray,
            manifest: Manifest, tolerance: Tolerance, load_ms: float = 0.0,
            backend: str = "", threshold=None, keras_threshold=None) -> ParityResult:
    """Metrics and tolerance checks for artifact probabilities against Keras probabilities.

    ``threshold``: the artifact's own (default: the manifest's, which the Keras labels use);
    ``keras_threshold``: the Keras labels' (default: the manifest's). Either may be one value
    per image (a model with a modality output: each image's modality threshold).
    """
    temp = manifest.temperature
    k_thr = manifest.threshold if keras_threshold is None else keras_threshold
    thr = k_thr if threshold is None else threshold
    cal_art, cal_keras = apply_temperature(p_art, temp), apply_temperature(p_keras, temp)
    m_art = binary_metrics(labels, cal_art, thr)
    m_keras = binary_metrics(labels, cal_keras, k_thr)
    diff = np.abs(p_art - p_keras)
    keras_labels = cal_keras >= k_thr
    agreement = float(np.mean((cal_art >= k_thr) == keras_labels)) if len(diff) else 0.0
    decisions = float(np.mean((cal_art >= thr) == keras_labels)) if len(diff) else 0.0
    shown = float(thr) if np.ndim(thr) == 0 else float("nan")  # per image: the caller says
    r = ParityResult(name, int(len(diff)), backend, shown, round(load_ms, 2), m_art["accuracy"],
                     m_art["roc_auc"], m_art["sensitivity"], m_art["specificity"],
                     m_keras["accuracy"], agreement, float(diff.max(initial=0.0)),
                     float(diff.mean()) if len(diff) else 0.0, decisions,
                     tolerance=asdict(tolerance))
    r.failures = _failures(r, tolerance)
    return r


INT8_STEP = 1 / 256  # an int8 probability's resolution: closer Keras probabilities are a tie


def compare_softmax(name: str, v_art: np.ndarray, v_keras: np.ndarray, labels: np.ndarray,
                    manifest: Manifest, tolerance: Tolerance, load_ms: float = 0.0,
                    backend: str = "", step: float = 0.0) -> ParityResult:
    """Parity of a softmax model: labels as ``Manifest.read`` gives them, on N classes.

    ``accuracy``: top label right; ``roc_auc``: macro one-vs-rest; ``sensitivity``: balanced
    accuracy (mean recall), ``specificity``: NaN; ``max_abs_diff`` over every class probability.
    ``agreement``: the file gives Keras's label, or the two labels' Keras probabilities are
    within ``step`` (``INT8_STEP`` for an int8 file: a tie it cannot resolve; 0 for float
    files); ``decision_agreement``: the labels alone.
    """
    from core.metrics import multiclass_metrics

    n, k = len(labels), len(manifest.labels)
    index = {c: i for i, c in enumerate(manifest.labels)}
    pred_a = np.array([index[manifest.read(v).label] for v in v_art], int)
    pred_k = np.array([index[manifest.read(v).label] for v in v_keras], int)
    m_a = multiclass_metrics(labels, v_art[:, :k], manifest.labels, pred_a) if n else {}
    m_k = multiclass_metrics(labels, v_keras[:, :k], manifest.labels, pred_k) if n else {}
    diff = np.abs(v_art[:, :k] - v_keras[:, :k])
    rows = np.arange(n)
    tie = np.abs(v_keras[rows, pred_a] - v_keras[rows, pred_k]) <= step
    agree = float(np.mean((pred_a == pred_k) | tie)) if n else 0.0
    same = float(np.mean(pred_a == pred_k)) if n else 0.0
    thr = float(manifest.threshold) if manifest.positive_index >= 0 else float("nan")
    r = ParityResult(name, n, backend, thr, round(load_ms, 2), m_a.get("accuracy", 0.0),
                     m_a.get("macro_roc_auc", float("nan")),
                     m_a.get("balanced_accuracy", float("nan")), float("nan"),
                     m_k.get("accuracy", 0.0), agree, float(diff.max(initial=0.0)),
                     float(diff.mean()) if n else 0.0, same, tolerance=asdict(tolerance))
    r.failures = _failures(r, tolerance)
    return r


def _failures(r: ParityResult, tol: Tolerance) -> list[str]:
    out = []
    if r.n == 0:
        return ["no test images to compare on"]
    if not math.isnan(r.guard_agreement) and r.guard_agreement < r.guard_min_agreement:
        out.append(f"guard decision agreement {pct(r.guard_agreement)} < "
                   f"{pct(r.guard_min_agreement, 0)} (test and non-lesion images)")
    if tol.max_prob_diff is not None and r.max_abs_diff > tol.max_prob_diff:
        out.append(f"max |p - p_keras| {r.max_abs_diff:.2e} > {tol.max_prob_diff:.0e}")
    if r.agreement < tol.min_agreement:
        out.append(f"label agreement {pct(r.agreement)} < {pct(tol.min_agreement, 0)} at the Keras "
                   f"threshold ({round((1 - r.agreement) * r.n)} of {r.n} images differ)")
    drop = r.keras_accuracy - r.accuracy
    if drop > tol.max_accuracy_drop + 1e-9:
        out.append(f"accuracy {down(r.accuracy)} vs Keras {down(r.keras_accuracy)} "
                   f"(drop {drop * 100:.1f} points > {tol.max_accuracy_drop * 100:.1f})")
    return out


def check_artifact(path: Path, fmt: Format, manifest: Manifest, images: np.ndarray,
                   labels: np.ndarray, p_keras: np.ndarray,
                   tolerance: Tolerance | None = None, keras_vectors: np.ndarray | None = None,
                   nonlesions: np.ndarray | None = None) -> ParityResult:
    """Run ``path`` with ``fmt.runtime`` on ``images`` and compare with ``p_keras``.

    With a guard in the manifest, ``keras_vectors`` holds the Keras output vectors for
    ``images`` followed by ``nonlesions``; the guard decisions are compared on all of them.
    """
    g = manifest.guard
    extra = nonlesions if g is not None and nonlesions is not None else images[:0]
    out, load_ms, backend = artifact_outputs(path, fmt.runtime, manifest,
                                             np.concatenate([images, extra]))
    tol = tolerance or fmt.tolerance
    n = len(images)
    if manifest.output == "softmax":
        step = INT8_STEP if fmt.quantized else 0.0
        return compare_softmax(fmt.name, out[:n], keras_vectors[:n], labels,
                               manifest.for_artifact(path), tol, load_ms, backend, step)
    own, k_thr = manifest.for_artifact(path), None
    thr = own.threshold
    if manifest.modality_thresholds and keras_vectors is not None:  # as the runner labels
        thr = np.array([own.threshold_for(own.modality_of(v)) for v in out[:n]])
        k_thr = np.array([manifest.threshold_for(manifest.modality_of(v))
                          for v in keras_vectors[:n]])
    r = compare(fmt.name, out[:n, 0], p_keras, labels, manifest, tol, load_ms, backend, thr,
                k_thr)
    r.threshold = own.threshold  # the file's primary threshold (per image: its modality's)
    if g is not None and keras_vectors is not None:
        s_art, s_keras = out[:, g.index], keras_vectors[:, g.index]
        r.guard_agreement, r.guard_max_abs_diff = guard_agreement(s_art, s_keras, g.threshold)
        r.guard_test_pass = float(np.mean(s_art[:n] >= g.threshold)) if n else float("nan")
        if len(extra):
            r.guard_nonlesion_reject = float(np.mean(s_art[n:] < g.threshold))
        r.guard_min_agreement = MIN_GUARD_AGREEMENT["quantized" if fmt.quantized else "float"]
        r.failures = _failures(r, tol)
    return r
