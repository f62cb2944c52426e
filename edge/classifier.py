"""A classifier = a runtime + its manifest. Returns typed ``Prediction``s for RGB images.

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

from edge.atomic import sha256_file
from edge.images import load_rgb
from edge.manifest import Manifest, ManifestError, find_manifest
from edge.preprocess import dequantize, fit_to_input, to_model_input
from edge.runtimes import open_runtime


@dataclass
class Prediction:
    """One classified image. ``probability`` is the calibrated P(positive label)."""

    source: str
    label: str
    probability: float
    raw_probability: float
    threshold: float
    ms: float  # preprocess + inference + postprocess, excluding decode

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier:
    """Runs one exported artifact with the preprocessing its manifest prescribes."""

    def __init__(self, model_path: str | Path, backend: str = "auto",
                 threads: int | None = None, manifest: Manifest | None = None,
                 verify: bool = False):
        self.model_path = Path(model_path)
        # the runtime first: a corrupt model is reported as such, not as a manifest problem
        self.runtime = open_runtime(self.model_path, backend, threads)
        # this file's own operating threshold, when export chose one for it
        self.manifest = (manifest or find_manifest(self.model_path)).for_artifact(self.model_path)
        if verify:
            self._check_hash()
        self._check_shape()

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
        img = fit_to_input(rgb, m.input_height, m.input_width, m.color_constancy)
        return to_model_input(img, spec.dtype, spec.scale, spec.zero_point)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """Invoke on a prepared tensor; the dequantized output vector (manifest layout)."""
        out = self.runtime.run(x)
        spec = self.runtime.output
        return dequantize(np.asarray(out), spec.scale, spec.zero_point).reshape(-1)

    def raw_probability(self, x: np.ndarray) -> float:
        """Invoke on a prepared tensor; the dequantized P(positive) before calibration."""
        return float(self.raw_outputs(x)[0])

    def predict_rgb(self, rgb: np.ndarray, source: str = "<array>") -> Prediction:
        t0 = time.perf_counter()
        raw = self.raw_probability(self.prepare(rgb))
        p = self.manifest.calibrate(raw)
        label = self.manifest.label_for(p)
        ms = (time.perf_counter() - t0) * 1000
        return Prediction(source, label, p, raw, self.manifest.threshold, ms)

    def predict_file(self, path: str | Path) -> Prediction:
        """Decode with ``edge.images.load_rgb`` (raises ``ImageError``) and classify."""
        return self.predict_rgb(load_rgb(path), str(path))
