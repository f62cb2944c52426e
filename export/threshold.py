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

from dataclasses import dataclass, field
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
    # per image: its modality (a model with a modality output gets one threshold each)
    modalities: list[str] | None = None
    modality_targets: dict[str, float] = field(default_factory=dict)
    primary_modality: str = ""  # whose threshold is also the one ``threshold``

    def target(self, modality: str = "") -> float:
        return float(self.modality_targets.get(modality, self.target_sensitivity))

    def describe(self, modality: str = "") -> str:
        if self.modalities is not None and not modality:  # one rule per modality
            return "; ".join(f"{m}: {self.describe(m)}" for m in sorted(set(self.modalities)))
        n = (len(self.labels) if not modality else
             int(np.sum(np.asarray(self.modalities) == modality)))
        return (f"{M.describe_threshold_rule(self.target(modality), self.confidence)}, chosen "
                f"on this file's own outputs for the {n} {modality + ' ' if modality else ''}"
                "validation images")


@dataclass
class ArtifactThreshold:
    """The threshold one artifact gets, and what it does on validation."""

    threshold: float
    rule: str
    val_sensitivity: float
    val_specificity: float
    modality_thresholds: dict[str, float] = field(default_factory=dict)


def choose(labels: np.ndarray, raw: np.ndarray, temperature: float,
           rule: OperatingRule) -> ArtifactThreshold:
    """Apply ``rule`` to raw sigmoid outputs (temperature-scaled first, like the manifest says).

        >>> y = np.array([0, 0, 1, 1]); p = np.array([0.1, 0.6, 0.7, 0.9])
        >>> round(choose(y, p, 1.0, OperatingRule(None, y, 0.5, 0.0)).threshold, 6)
        0.9
    """
    cal = M.apply_temperature(np.asarray(raw, np.float64), temperature)
    if rule.modalities is not None:
        return _by_modality(np.asarray(labels), cal, rule)
    thr = M.threshold_for_sensitivity(labels, cal, rule.target_sensitivity, rule.confidence)
    m = M.binary_metrics(labels, cal, thr)
    return ArtifactThreshold(float(thr), rule.describe(), m["sensitivity"], m["specificity"])


def _by_modality(labels: np.ndarray, cal: np.ndarray, rule: OperatingRule) -> ArtifactThreshold:
    """One threshold per modality, each on that modality's images; validation sensitivity and
    specificity with every image at its own modality's threshold."""
    mod, thr = np.asarray(rule.modalities), {}
    for m in sorted(set(rule.modalities)):
        k = mod == m
        thr[m] = float(M.threshold_for_sensitivity(labels[k], cal[k], rule.target(m),
                                                   rule.confidence))
    per_image = np.array([thr[m] for m in mod])
    met = M.binary_metrics(labels, cal, per_image)
    main = rule.primary_modality if rule.primary_modality in thr else sorted(thr)[0]
    return ArtifactThreshold(thr[main], rule.describe(), met["sensitivity"], met["specificity"],
                             thr)


def artifact_threshold(path: Path, runtime: str, manifest: Manifest,
                       rule: OperatingRule) -> ArtifactThreshold:
    """Run ``path`` on the rule's validation images and choose its threshold (on output
    index 0, P(malignant); a guard score or lesion types after it are not thresholded here)."""
    from export.parity import artifact_probabilities

    raw, _, _ = artifact_probabilities(path, runtime, manifest, rule.images)
    return choose(rule.labels, raw, manifest.temperature, rule)
