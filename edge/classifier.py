"""A classifier = a runtime + its manifest. Returns typed ``Prediction``s for RGB images.

Each image goes through the manifest's quality gate (``edge/quality.py``) first: an unusable
one gets ``status="unusable"`` with the reason and never reaches the model. Otherwise the
model's output vector is read by ``Manifest.read`` (a softmax over N labels, or the
skin-lesion layout: P(malignant) at index 0, the lesion types (when the manifest has
``classes``), the modality (``manifest.modality_index``, schema 5: dermoscopic or phone
photo, whose own threshold then decides the label) and the guard score
(``manifest.guard.index``): below ``guard.threshold`` the status is ``"not_a_lesion"``. A manifest from before schema 3 has no guard, and gets the
default quality gate for its input size (the gate does not depend on the model). Only
``status == "ok"`` carries a benign/malignant label and probability. ``guard=False`` (the
runner's ``--no-guard``) skips both checks.

Example:
    >>> clf = Classifier("models/model_int8.tflite")            # doctest: +SKIP
    >>> clf.predict_file("lesion.jpg").label                         # doctest: +SKIP
    'benign'
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.atomic import sha256_file
from edge.images import load_rgb
from edge.manifest import Manifest, ManifestError, find_manifest
from edge.preprocess import apply_corrections, dequantize, fit_to_input, to_model_input
from edge.quality import PASS, check, gate_for_manifest
from edge.runtimes import open_runtime


STATUSES = ("ok", "not_a_lesion", "unusable")


@dataclass
class Prediction:
    """One image's result. ``probability`` is the calibrated P(positive label).

    ``status``: ``"ok"`` (labelled), ``"not_a_lesion"`` (guard score below its threshold) or
    ``"unusable"`` (quality gate; ``reason`` names the check). A non-ok result has
    ``label``/``probability``/``raw_probability`` ``None``: no benign/malignant call.
    """

    source: str
    label: str | None
    probability: float | None
    raw_probability: float | None
    threshold: float | None  # None: a softmax without a positive class
    ms: float  # preprocess + inference + postprocess, excluding decode
    status: str = "ok"
    reason: str = ""  # quality check that failed (unusable), or "guard" (not_a_lesion)
    lesion_type: str | None = None  # most likely type when the manifest has classes
    type_probability: float | None = None
    guard_score: float | None = None
    modality: str = ""  # "dermoscopic" / "phone" when the model has a modality output
    # every label with its calibrated probability, most likely first (empty when not ok)
    top: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier:
    """Runs one exported artifact with the preprocessing its manifest prescribes."""

    def __init__(self, model_path: str | Path, backend: str = "auto",
                 threads: int | None = None, manifest: Manifest | None = None,
                 verify: bool = False, guard: bool = True):
        self.model_path = Path(model_path)
        self.use_guard = guard  # False: no quality gate, no out-of-distribution guard
        # the runtime first: a corrupt model is reported as such, not as a manifest problem
        self.runtime = open_runtime(self.model_path, backend, threads)
        # this file's own operating threshold, when export chose one for it
        self.manifest = (manifest or find_manifest(self.model_path)).validate().for_artifact(
            self.model_path)
        if verify:
            self._check_hash()
        self._check_shape()
        self.gate = gate_for_manifest(self.manifest)  # old manifests: the default gate

    def _check_hash(self) -> None:
        """The file must be the one its manifest lists (same sha256), when the manifest says."""
        art = self.manifest.artifact_for(self.model_path)
        if not art or not art.sha256 or not self.model_path.is_file():
            return
        if sha256_file(self.model_path) != art.sha256:
            raise ManifestError(
                f"{self.model_path}: file differs from the sha256 its manifest.json lists "
                "(corrupt or partly copied, or the manifest belongs to another export); copy "
                "the model and its manifest.json again from the same export")

    def _check_shape(self) -> None:
        m, shape = self.manifest, self.runtime.input.shape
        want = (m.input_height, m.input_width, m.channels)
        if len(shape) != 4 or tuple(shape[1:]) != want:
            raise ManifestError(
                f"{self.model_path}: model input shape {tuple(shape)} does not match its "
                f"manifest ({want[0]}x{want[1]}x{want[2]}); use the manifest.json exported "
                "with this model"
            )
        out = self.runtime.output.shape
        if int(np.prod([d for d in out if d > 0])) != m.output_size:
            raise ManifestError(f"{self.model_path}: model output shape {tuple(out)} does not "
                                f"match its manifest ({m.output_size} values); export the model "
                                "with python export/convert.py")

    @property
    def backend(self) -> str:
        return self.runtime.backend

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 image -> the exact input tensor this artifact expects."""
        m, spec = self.manifest, self.runtime.input
        img = fit_to_input(rgb, m.input_height, m.input_width, m.color_constancy, m.border)
        return to_model_input(img, spec.dtype, spec.scale, spec.zero_point, m.pixel_range,
                              m.color_order)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """Invoke on a prepared tensor; the dequantized output vector (float64)."""
        out = self.runtime.run(x)
        spec = self.runtime.output
        return dequantize(np.asarray(out), spec.scale, spec.zero_point).reshape(-1).astype(
            np.float64)

    def raw_probability(self, x: np.ndarray) -> float:
        """Invoke on a prepared tensor; the dequantized P(positive) before calibration."""
        return float(self.raw_outputs(x)[0])

    def predict_rgb(self, rgb: np.ndarray, source: str = "<array>") -> Prediction:
        t0 = time.perf_counter()
        m, spec = self.manifest, self.runtime.input
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        gate = self.gate if self.use_guard else None
        if gate is not None and gate.enabled and min(rgb.shape[:2]) < gate.min_side:
            return self._result(source, t0, "unusable", "too_small")
        fitted = fit_to_input(rgb, m.input_height, m.input_width)
        q = check(rgb, gate, m.input_height, m.input_width, fitted) if gate is not None else PASS
        if not q.ok:
            return self._result(source, t0, "unusable", q.reason)
        x = to_model_input(apply_corrections(fitted, m.color_constancy, m.border), spec.dtype,
                           spec.scale, spec.zero_point, m.pixel_range, m.color_order)
        vec = self.raw_outputs(x)
        g = m.guard
        score = float(vec[g.index]) if g is not None and g.index >= 0 else None
        if self.use_guard and score is not None and score < g.threshold:
            return self._result(source, t0, "not_a_lesion", "guard", score)
        r = m.read(vec)
        types = m.class_probabilities(vec) if m.output == "sigmoid" else {}
        top = max(types, key=types.get) if types else None
        return Prediction(source, r.label, r.probability, r.raw_probability, r.threshold,
                          (time.perf_counter() - t0) * 1000, lesion_type=top,
                          type_probability=types[top] if top else None, guard_score=score,
                          modality=r.modality, top=r.top)

    def _result(self, source: str, t0: float, status: str, reason: str,
                score: float | None = None) -> Prediction:
        """A result without a benign/malignant call (not a lesion, or unusable)."""
        m = self.manifest
        return Prediction(source, None, None, None, m.threshold if m.positive_label else None,
                          (time.perf_counter() - t0) * 1000, status, reason, guard_score=score)

    def predict_file(self, path: str | Path) -> Prediction:
        """Decode with ``edge.images.load_rgb`` (raises ``ImageError``) and classify."""
        return self.predict_rgb(load_rgb(path), str(path))
