"""The quality gate: is an input usable at all, before the model sees it?

Implements ``edge.manifest.QualityGate`` exactly as its docstring defines it (a browser app
re-implements the same checks in JavaScript; keep both in step). ``check`` returns a typed
``QualityResult``: ``ok``, the ``reason`` of the first failing check (``too_small``,
``too_dark``, ``too_bright``, ``flat``, ``blurred``; ``""`` when ok) and the measured values.
An unusable input gets the runner status ``unusable`` and no benign/malignant label.

The default thresholds (``gate_for_size``) were chosen from data: ``research/quality_fit.py``
measures the checks on the training split of the shipped recipe (4,182 images of three sources,
no validation or test image) and puts the sharpness floor at their 0.25th percentile per input
size (99.73-99.76% of them pass every check at 32..224 px). Held out from that fit, at 160 px
(the shipped size) it lets through 100.00% of the skin-lesions, 99.64% of the ham10000-extra
and 98.13% of the pad-ufes-phone validation images and 99.84% of the skin-lesions test split
(``python research/quality_fit.py``; docs/experiments.md, "The quality gate fitted on training
images only").

Export writes the gate into every manifest, so a model keeps the gate it was exported with
(the shipped ``models/manifest.json``: 11.1 at 160 px, until ``make shipped`` exports it again);
for a manifest from before schema 3 (no gate in it) the runner applies
``gate_for_size(input size)``: the gate does not depend on the model.

Example:
    >>> import numpy as np
    >>> r = check(np.zeros((100, 100, 3), np.uint8), DEFAULT_GATE, 64, 64)
    >>> r.ok, r.reason, r.values.brightness
    (False, 'too_dark', 0.0)
    >>> check(np.zeros((8, 8, 3), np.uint8), DEFAULT_GATE, 64, 64).reason
    'too_small'
    >>> rng = np.random.default_rng(0)
    >>> check(rng.integers(60, 200, (100, 100, 3), dtype=np.uint8), DEFAULT_GATE, 64, 64).ok
    True
    >>> gate_for_size(128).min_sharpness, gate_for_size(150).min_sharpness
    (15.0, 11.7)
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from edge.manifest import QualityGate
from edge.preprocess import fit_to_input

REASONS = ("too_small", "too_dark", "too_bright", "flat", "blurred")
MESSAGES = {  # what a user reads; the reason code stays in CSV/JSON
    "too_small": "image too small",
    "too_dark": "image too dark",
    "too_bright": "image too bright (overexposed)",
    "flat": "mostly one flat colour",
    "blurred": "image too blurred",
}

# Brightness and flatness limits every training image passes (research/quality_fit.py);
# the sharpness floor is per input size (``gate_for_size``).
DEFAULT_GATE = QualityGate(
    enabled=True, min_side=32, min_brightness=20.0, max_brightness=240.0, flat_tolerance=6.0,
    max_flat_fraction=0.96, min_sharpness=0.0, fitted_on="")


@dataclass(frozen=True)
class QualityValues:
    """What the gate measured: original min side, mean luma, flat share, Laplacian variance."""

    min_side: int
    brightness: float
    flat_fraction: float
    sharpness: float


@dataclass(frozen=True)
class QualityResult:
    """``ok`` or the first failing check's ``reason`` (a key of ``MESSAGES``)."""

    ok: bool
    reason: str
    values: QualityValues | None  # None when only the size was checked (too small)

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason, self.reason)

    def to_dict(self) -> dict:
        return asdict(self)


PASS = QualityResult(True, "", None)  # what a disabled gate returns

SIZES = (32, 64, 96, 128, 160, 192, 224)
# Measured by `python research/quality_fit.py` (2026-12-05) on the training split of the
# shipped recipe (research.multisource.gather, validation 15%, pad-ufes-phone 25%, seed 0):
# skin-lesions 2,236, ham10000-extra 1,610, pad-ufes-phone 336; no validation or test image.
# The 0.25th percentile of the Laplacian variance at each input size, cut to one decimal.
MIN_SHARPNESS = {32: 38.3, 64: 25.6, 96: 21.5, 128: 15.0, 160: 11.7, 192: 8.7, 224: 8.7}
FITTED_ON = ("training split of the shipped recipe, no validation or test image: skin-lesions "
             "(2,236), ham10000-extra (1,610) and pad-ufes-phone (336 phone photos): brightness "
             "58.1..222.7 and flat share <= 0.892 measured (limits 20..240 and 0.96 leave room "
             "for a small mole on plain skin), sharpness floor at the 0.25th percentile for this "
             "input size (research/quality_fit.py)")


def gate_for_size(size: int, table: dict[int, float] | None = None) -> QualityGate:
    """The default gate for a square model input of ``size`` px.

    The sharpness floor is the lowest one measured at any table size up to the next table
    size at or above ``size`` (a non-increasing envelope: a larger size's measured floor can
    sit above a smaller one's when many images are not resized at it; a camera frame is always
    resized). Above the largest table size (224 px) nothing was measured: the floor is 0.
    ``table``: another ``{size: floor}`` than ``MIN_SHARPNESS`` (a fit being checked).

        >>> [gate_for_size(s).min_sharpness for s in (32, 100, 128, 224, 300)]
        [38.3, 15.0, 15.0, 8.7, 0.0]
    """
    table = MIN_SHARPNESS if table is None else table
    if size > max(table):
        floor = 0.0
    else:
        upper = min(s for s in table if s >= size)
        floor = min(v for s, v in table.items() if s <= upper)
    return dataclasses.replace(DEFAULT_GATE, min_sharpness=floor, fitted_on=FITTED_ON)


def luma(rgb: np.ndarray) -> np.ndarray:
    """``Y = 0.299 R + 0.587 G + 0.114 B`` in float32 (uint8 RGB in)."""
    x = rgb.astype(np.float32)
    return (np.float32(0.299) * x[..., 0] + np.float32(0.587) * x[..., 1]
            + np.float32(0.114) * x[..., 2])


def flat_fraction(y: np.ndarray, tolerance: float) -> float:
    """Share of pixels within ``tolerance`` of the median luma (numpy median: the mean of the
    two middle values for an even count)."""
    return float(np.mean(np.abs(y - np.float32(np.median(y))) <= np.float32(tolerance)))


def laplacian_variance(y: np.ndarray) -> float:
    """Population variance of the 4-neighbour Laplacian over interior pixels (no padding).

        >>> laplacian_variance(np.zeros((5, 5), np.float32))
        0.0
    """
    if y.shape[0] < 3 or y.shape[1] < 3:
        return 0.0
    lap = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
           - np.float32(4) * y[1:-1, 1:-1])
    return float(np.var(lap, dtype=np.float64))


def measure(fitted: np.ndarray, original_shape: tuple[int, ...],
            tolerance: float) -> QualityValues:
    """The values of every check for one fitted image (model-input sized, before colour constancy)."""
    y = luma(fitted)
    return QualityValues(int(min(original_shape[:2])), float(np.mean(y, dtype=np.float64)),
                         flat_fraction(y, tolerance), laplacian_variance(y))


def verdict(v: QualityValues, gate: QualityGate) -> str:
    """The first failing check's reason for measured values, ``""`` when all pass."""
    if v.min_side < gate.min_side:
        return "too_small"
    if v.brightness < gate.min_brightness:
        return "too_dark"
    if v.brightness > gate.max_brightness:
        return "too_bright"
    if v.flat_fraction > gate.max_flat_fraction:
        return "flat"
    if v.sharpness < gate.min_sharpness:
        return "blurred"
    return ""


def gate_for_manifest(manifest) -> QualityGate:
    """The manifest's gate; for a manifest from before schema 3 (none in it), the default
    gate for its input size."""
    if manifest.schema < 3:
        return gate_for_size(min(manifest.input_height, manifest.input_width))
    return manifest.quality


def check(rgb: np.ndarray, gate: QualityGate, height: int, width: int,
          fitted: np.ndarray | None = None) -> QualityResult:
    """Apply ``gate`` to an RGB uint8 image for a model input of ``height`` x ``width``.

    ``fitted``: the image already through ``fit_to_input(rgb, height, width)`` (no colour
    constancy), to save resizing twice. A disabled gate always passes.
    """
    if not gate.enabled:
        return PASS
    if min(rgb.shape[:2]) < gate.min_side:
        return QualityResult(False, "too_small", None)
    if fitted is None:
        fitted = fit_to_input(rgb, height, width)
    v = measure(fitted, rgb.shape, gate.flat_tolerance)
    reason = verdict(v, gate)
    return QualityResult(not reason, reason, v)
