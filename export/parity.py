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
from export.formats import Format, Tolerance
from core.metrics import apply_temperature, binary_metrics


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
    tolerance: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def keras_probabilities(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Raw P(malignant) (output index 0) of the Keras model for uint8 images (float32 0..255)."""
    x = images.astype(np.float32)
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float64).reshape(len(x), -1)[:, 0]


def artifact_probabilities(path: Path, backend: str, manifest: Manifest,
                           images: np.ndarray) -> tuple[np.ndarray, float, str]:
    """(raw probabilities, load time in ms, backend) of one artifact, image by image."""
    t0 = time.perf_counter()
    clf = Classifier(path, backend=backend, threads=None, manifest=manifest)
    load_ms = (time.perf_counter() - t0) * 1000
    probs = np.array([clf.raw_probability(clf.prepare(img)) for img in images], np.float64)
    return probs, load_ms, clf.backend


def compare(name: str, p_art: np.ndarray, p_keras: np.ndarray, labels: np.ndarray,
            manifest: Manifest, tolerance: Tolerance, load_ms: float = 0.0,
            backend: str = "", threshold: float | None = None) -> ParityResult:
    """Metrics and tolerance checks for artifact probabilities against Keras probabilities.

    ``threshold``: the artifact's own (default: the manifest's, which the Keras labels use).
    """
    k_thr, temp = manifest.threshold, manifest.temperature
    thr = k_thr if threshold is None else threshold
    cal_art, cal_keras = apply_temperature(p_art, temp), apply_temperature(p_keras, temp)
    m_art = binary_metrics(labels, cal_art, thr)
    m_keras = binary_metrics(labels, cal_keras, k_thr)
    diff = np.abs(p_art - p_keras)
    keras_labels = cal_keras >= k_thr
    agreement = float(np.mean((cal_art >= k_thr) == keras_labels)) if len(diff) else 0.0
    decisions = float(np.mean((cal_art >= thr) == keras_labels)) if len(diff) else 0.0
    r = ParityResult(name, int(len(diff)), backend, thr, round(load_ms, 2), m_art["accuracy"],
                     m_art["roc_auc"], m_art["sensitivity"], m_art["specificity"],
                     m_keras["accuracy"], agreement, float(diff.max(initial=0.0)),
                     float(diff.mean()) if len(diff) else 0.0, decisions, asdict(tolerance))
    r.failures = _failures(r, tolerance)
    return r


def _failures(r: ParityResult, tol: Tolerance) -> list[str]:
    out = []
    if r.n == 0:
        return ["no test images to compare on"]
    if tol.max_prob_diff is not None and r.max_abs_diff > tol.max_prob_diff:
        out.append(f"max |p - p_keras| {r.max_abs_diff:.2e} > {tol.max_prob_diff:.0e}")
    if r.agreement < tol.min_agreement:
        out.append(f"label agreement {r.agreement:.2%} < {tol.min_agreement:.0%} at the Keras "
                   f"threshold ({round((1 - r.agreement) * r.n)} of {r.n} images differ)")
    drop = r.keras_accuracy - r.accuracy
    if drop > tol.max_accuracy_drop + 1e-9:
        out.append(f"accuracy {r.accuracy:.4f} vs Keras {r.keras_accuracy:.4f} "
                   f"(drop {drop * 100:.1f} points > {tol.max_accuracy_drop * 100:.1f})")
    return out


def check_artifact(path: Path, fmt: Format, manifest: Manifest, images: np.ndarray,
                   labels: np.ndarray, p_keras: np.ndarray,
                   tolerance: Tolerance | None = None) -> ParityResult:
    """Run ``path`` with ``fmt.runtime`` on ``images`` and compare with ``p_keras``."""
    p_art, load_ms, backend = artifact_probabilities(path, fmt.runtime, manifest, images)
    return compare(fmt.name, p_art, p_keras, labels, manifest, tolerance or fmt.tolerance,
                   load_ms, backend, manifest.for_artifact(path).threshold)
