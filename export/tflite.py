"""TFLite exporters: float32, float16, dynamic-range int8 and full-integer int8.

Each function converts the model's SavedModel (``ctx.saved_model()``, exported once and shared
with the ONNX path; ``from_keras_model`` would re-export it, loudly, for every format) and
writes the flatbuffer to ``dst``. Facts they rely on (see shared/docs/toolchain.md):

- dynamic-range models from the TF 2.21 quantizer do not load on tflite-runtime 2.14;
  ``experimental_new_dynamic_range_quantizer = False`` gives a model that loads on both;
- full int8 takes int8 input/output whose scale/zero point come from the representative
  images, so runners must read them from the model (the manifest records them too).

Example:
    >>> export_tflite_int8(ctx, Path("model_int8.tflite"))   # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from export.context import ExportContext


def _converter(ctx: ExportContext):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_saved_model(str(ctx.saved_model()))


def _write(dst: Path, conv) -> None:
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected" is noise
        warnings.simplefilter("ignore", UserWarning)
        flatbuffer = conv.convert()
    if not flatbuffer:
        raise RuntimeError("the TFLite converter returned an empty model")
    Path(dst).write_bytes(flatbuffer)


def export_tflite_fp32(ctx: ExportContext, dst: Path) -> None:
    """Plain float32 conversion."""
    _, conv = _converter(ctx)
    _write(dst, conv)


def export_tflite_fp16(ctx: ExportContext, dst: Path) -> None:
    """Float16 weights (half the size); CPUs dequantize them at load and compute in fp32."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    _write(dst, conv)


def export_tflite_dynamic(ctx: ExportContext, dst: Path) -> None:
    """int8 weights, float activations; no calibration data. Loads on tflite-runtime 2.14."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.experimental_new_dynamic_range_quantizer = False  # keeps op versions 2.14 knows
    _write(dst, conv)


def representative_dataset(images: np.ndarray):
    """A converter callback yielding one float32 image (batch of 1) at a time."""
    def gen() -> Iterator[list[np.ndarray]]:
        for img in images:
            yield [img[None].astype(np.float32)]
    return gen


def export_tflite_int8(ctx: ExportContext, dst: Path) -> None:
    """Full-integer int8: int8 input and output, activations calibrated on training images.

    Converts the bias-corrected copy (``ctx.quant_saved_model()``): without it, MobileNetV2's
    int8 weight rounding shifts the logit by -0.8 on average (agreement with Keras 94% -> 99%).
    """
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(ctx.quant_saved_model()))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(ctx.calibration_float())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    _write(dst, conv)
