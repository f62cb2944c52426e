"""ONNX exporters: float32 through tf2onnx (SavedModel path) and int8 QDQ through onnxruntime.

``tf2onnx.convert.from_keras`` fails on Keras 3 models, or silently writes a model with no
outputs; the SavedModel path (``model.export`` then tf2onnx's ``--saved-model`` conversion,
run in-process here) works and keeps an NHWC float32 input named ``image``. Every written
model is checked for an input and an output.

The int8 model is static QDQ quantization (per-channel int8 weights, uint8 activations)
calibrated on the same training images as the TFLite int8 model. Input and output stay
float32, so the ONNX runner never quantizes anything itself.

Example:
    >>> export_onnx_fp32(ctx, Path("model_fp32.onnx"))   # doctest: +SKIP
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from export.context import ExportContext

INPUT_NAME = "image"


def check_onnx(path: Path) -> None:
    """Raise ``RuntimeError`` unless ``path`` is a valid ONNX model with one image input and outputs."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    graph = model.graph
    if not graph.output:
        raise RuntimeError("tf2onnx wrote a model with no outputs (the from_keras failure mode)")
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise RuntimeError(f"expected one model input, found {len(inputs)}")
    dims = [d.dim_value or -1 for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[3] != 3:
        raise RuntimeError(f"expected an NHWC input (N, H, W, 3), found {dims}")


def _convert_saved_model(saved_model: Path, dst: Path, opset: int) -> None:
    """What ``python -m tf2onnx.convert --saved-model DIR --opset N`` does, in-process."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx import utils as tf2onnx_utils
    from tf2onnx.convert import _convert_common  # the CLI's own conversion step

    log = logging.getLogger("tf2onnx")
    level, log.level = log.level, logging.ERROR  # no "--tag not specified" chatter
    try:
        graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
            str(saved_model), None, None, return_initialized_tables=True,
            return_tensors_to_rename=True)
    finally:
        log.setLevel(level)
    if len(inputs) != 1:
        raise RuntimeError(f"the SavedModel has {len(inputs)} inputs; expected one image input")
    renames[inputs[0]] = INPUT_NAME
    # reproducible bytes: tf2onnx numbers the nodes it creates with one counter per process
    # (start it afresh) and writes ``name`` into the graph's doc string (no scratch path there)
    tf2onnx_utils.INTERNAL_NAME = 1
    with tf.device("/cpu:0"):
        _convert_common(graph_def, name=saved_model.name, opset=opset, input_names=inputs,
                        output_names=outputs, tensors_to_rename=renames,
                        initialized_tables=tables, output_path=str(dst))


def float_onnx(ctx: ExportContext) -> Path:
    """The checked float32 ONNX model in the scratch folder (built once per export)."""
    def build() -> Path:
        out = ctx.workdir / "float.onnx"
        _convert_saved_model(ctx.saved_model(), out, ctx.opset)
        check_onnx(out)
        return out
    return ctx.cached("onnx_fp32", build)


def export_onnx_fp32(ctx: ExportContext, dst: Path) -> None:
    """Float32 ONNX, NHWC input ``image`` (raw RGB 0..255), one sigmoid output."""
    shutil.copyfile(float_onnx(ctx), dst)


def image_reader(images: np.ndarray, input_name: str = INPUT_NAME, batch: int = 16):
    """An onnxruntime ``CalibrationDataReader`` over float32 images, in small batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class ImageReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = [images[i : i + batch] for i in range(0, len(images), batch)]
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= len(self._batches):
                return None
            self._i += 1
            return {input_name: self._batches[self._i - 1]}

        def rewind(self) -> None:
            self._i = 0

    return ImageReader()


def export_onnx_int8(ctx: ExportContext, dst: Path) -> None:
    """Static QDQ int8 (per-channel weights) calibrated on the training images."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = ctx.calibration_float()
    src = ctx.workdir / "float_bias_corrected.onnx"  # see export/bias_correction.py
    _convert_saved_model(ctx.quant_saved_model(), src, ctx.opset)
    check_onnx(src)
    prepped = ctx.workdir / "float_prepped.onnx"
    quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    quantize_static(str(prepped), str(dst), image_reader(images), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    check_onnx(dst)
