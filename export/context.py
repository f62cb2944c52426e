"""What every format exporter receives: the Keras model, calibration images and a scratch folder.

Intermediate products shared by several formats (the SavedModel, the float ONNX model) are
built once, on first use, and cached here, so ``--formats onnx_int8`` alone still works.

Example:
    >>> ctx = ExportContext(model, calibration=x_uint8, workdir=Path(tmp))   # doctest: +SKIP
    >>> ctx.saved_model()                                                     # doctest: +SKIP
    PosixPath('.../saved_model')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


class ExportError(RuntimeError):
    """A user-facing export problem; ``str(e)`` is one line naming the file and the fix."""


@dataclass
class ExportContext:
    """Inputs shared by all exporters.

    ``calibration`` holds RGB uint8 images ``[N, H, W, 3]`` already sized for the model
    (``edge.preprocess.fit_to_input``); quantizers see them as the model's float32 input
    (``edge.preprocess.model_pixels`` with the manifest's pixel range and colour order),
    exactly what the runtimes are fed.
    """

    model: Any  # keras.Model
    calibration: np.ndarray | None
    workdir: Path
    opset: int = 17
    pixel_range: tuple[float, float] = (0.0, 255.0)  # the manifest's (edge.preprocess.model_pixels)
    color_order: str = "RGB"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def image_size(self) -> tuple[int, int]:
        shape = self.model.input_shape
        return int(shape[1]), int(shape[2])

    def calibration_float(self) -> np.ndarray:
        """Calibration images as the model's float32 input; ``ExportError`` when there are none."""
        from edge.preprocess import model_pixels

        if self.calibration is None or len(self.calibration) == 0:
            raise ExportError("no calibration images: integer quantization needs training "
                              "images (pass --data DIR with one folder of images per class)")
        return model_pixels(self.calibration, self.pixel_range, self.color_order)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per export; later calls return the same value."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def saved_model(self) -> Path:
        """The model as a TF SavedModel (``model.export``), the path tf2onnx converts from."""
        def build() -> Path:
            out = self.workdir / "saved_model"
            self.model.export(str(out), verbose=False)
            return out
        return self.cached("saved_model", build)

    def quant_saved_model(self) -> Path:
        """SavedModel of the copy the int8 quantizers see: BN means absorb int8 weight rounding.

        See ``export/bias_correction.py``; float exports keep using ``saved_model()``.
        """
        def build() -> Path:
            from export.bias_correction import bias_corrected

            out = self.workdir / "saved_model_int8"
            bias_corrected(self.model, self.calibration_float()[:64]).export(str(out),
                                                                              verbose=False)
            return out
        return self.cached("quant_saved_model", build)
