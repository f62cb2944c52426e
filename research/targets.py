"""The project's bar for the shipped int8 model, as data (source: shared/docs/targets.md).

The model card checks the shipped model against these rows; no other file types them.

Example:
    >>> [c.met({"accuracy": 0.94, "roc_auc": 0.96, "sensitivity": 0.95}, 0.94) for c in BAR]
    [True, False, True, True]
"""
from __future__ import annotations

from dataclasses import dataclass

SOURCE = "shared/docs/targets.md"
# Best public accuracy on this Kaggle split, for context (ResNet-50, arXiv 2406.12954).
PUBLIC_BEST = ("ResNet-50", 0.935)


@dataclass(frozen=True)
class Criterion:
    """One row of the bar: ``key`` of the int8 metrics (or the accuracy change) >= ``minimum``."""

    name: str
    key: str  # a metrics key, or "accuracy_change_points" (int8 minus float accuracy, points)
    minimum: float

    def value(self, int8: dict, float_accuracy: float) -> float:
        if self.key == "accuracy_change_points":
            return 100 * (int8["accuracy"] - float_accuracy)
        return int8[self.key]

    def met(self, int8: dict, float_accuracy: float) -> bool:
        return self.value(int8, float_accuracy) >= self.minimum


BAR = (
    Criterion("accuracy", "accuracy", 0.935),
    Criterion("ROC AUC", "roc_auc", 0.975),
    Criterion("sensitivity at the shipped threshold", "sensitivity", 0.95),
    Criterion("accuracy change vs its float model (points)", "accuracy_change_points", -0.5),
)
