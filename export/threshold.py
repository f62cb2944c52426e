"""Each artifact's own operating threshold, chosen on its own validation outputs.

``train/evaluate.py`` picks the float model's threshold on the validation split. An int8 file
computes slightly different probabilities, so the float threshold does not give it the
sensitivity the rule asked for. Export therefore runs every artifact (through the edge runner's
code path) on the same validation images and applies the same rule, with the same target
sensitivity, confidence and temperature, to its outputs. The test split is never used.

Example:
    >>> rule = OperatingRule(x_val, y_val, target_sensitivity=0.95, confidence=0.95)  # doctest: +SKIP
    >>> artifact_threshold(Path("model_int8.tflite"), "litert", manifest, rule)       # doctest: +SKIP
    ArtifactThreshold(threshold=0.2122..., rule=..., val_sensitivity=0.978..., ...)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.manifest import Manifest
from core import metrics as M


@dataclass
class OperatingRule:
    """Validation images (uint8, model-sized) and labels, and the rule that picks a threshold."""

    images: np.ndarray
    labels: np.ndarray
    target_sensitivity: float = 0.95
    confidence: float = 0.95  # one-sided Wilson lower bound; 0 = the point estimate

    def describe(self) -> str:
        return (f"{M.describe_threshold_rule(self.target_sensitivity, self.confidence)}, chosen "
                f"on this file's own outputs for the {len(self.labels)} validation images")


@dataclass
class ArtifactThreshold:
    """The threshold one artifact gets, and what it does on validation."""

    threshold: float
    rule: str
    val_sensitivity: float
    val_specificity: float


def choose(labels: np.ndarray, raw: np.ndarray, temperature: float,
           rule: OperatingRule) -> ArtifactThreshold:
    """Apply ``rule`` to raw sigmoid outputs (temperature-scaled first, like the manifest says).

        >>> y = np.array([0, 0, 1, 1]); p = np.array([0.1, 0.6, 0.7, 0.9])
        >>> round(choose(y, p, 1.0, OperatingRule(None, y, 0.5, 0.0)).threshold, 6)
        0.9
    """
    cal = M.apply_temperature(np.asarray(raw, np.float64), temperature)
    thr = M.threshold_for_sensitivity(labels, cal, rule.target_sensitivity, rule.confidence)
    m = M.binary_metrics(labels, cal, thr)
    return ArtifactThreshold(float(thr), rule.describe(), m["sensitivity"], m["specificity"])


def artifact_threshold(path: Path, runtime: str, manifest: Manifest,
                       rule: OperatingRule) -> ArtifactThreshold:
    """Run ``path`` on the rule's validation images and choose its threshold (on output
    index 0, P(malignant); a guard score or lesion types after it are not thresholded here)."""
    from export.parity import artifact_probabilities

    raw, _, _ = artifact_probabilities(path, runtime, manifest, rule.images)
    return choose(rule.labels, raw, manifest.temperature, rule)
