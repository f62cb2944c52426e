"""Up-front checks that stop an export before it starts, each with a one-line message.

A missing, empty or corrupt ``.keras`` file; a model that does not take one RGB image and
return one probability; int8 formats without calibration images (and a warning below
``MIN_CALIBRATION``); an output folder that cannot be written.

Example:
    >>> model = load_keras_model("runs/demo/model.keras")        # doctest: +SKIP
    >>> image_input_size(model)                                  # doctest: +SKIP
    (224, 224)
"""
from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from core import first_line
from export.context import ExportError
from export.formats import Format

MIN_CALIBRATION = 300  # fewer calibration images than this: int8 ranges may be poor (warned)


def one_line(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` for a failed row or an error line."""
    return first_line(e, 300, with_type=True)


def load_keras_model(path: str | Path):
    """Load a ``.keras`` model, or raise ``ExportError`` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: Keras model not found (train one with python train/train.py, "
                          "or pass --model runs/<run>/model.keras)")
    if path.suffix not in (".keras", ".h5"):
        raise ExportError(f"{path}: not a .keras model file (pass the model.keras of a run)")
    if path.stat().st_size == 0:
        raise ExportError(f"{path}: empty file (0 bytes); re-run python train/train.py")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ExportError(f"{path}: not a valid .keras file (not a zip archive: truncated or "
                          "corrupt); re-run python train/train.py")
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # zipfile/JSON/h5 errors: the file is corrupt or truncated
        raise ExportError(f"{path}: cannot load the Keras model, the file is corrupt or "
                          f"truncated ({one_line(e)}); re-run python train/train.py") from e


def image_input_size(model, name: str = "model") -> tuple[int, int]:
    """(height, width) of a single-image-input model with one output vector."""
    ins = model.inputs if hasattr(model, "inputs") else []
    shape = tuple(model.input_shape) if len(ins) == 1 else None
    if shape is None or len(shape) != 4 or shape[3] != 3 or not shape[1] or not shape[2]:
        got = f"input shape {shape}" if shape else f"{len(ins)} inputs"
        raise ExportError(f"{name}: not an image classifier: {got}, expected one RGB image of "
                          "a fixed size, (None, H, W, 3); build the model with "
                          "keras.Input((H, W, 3))")
    out = tuple(model.output_shape) if len(model.outputs) == 1 else None
    if out is None or len(out) != 2 or not out[1]:
        raise ExportError(f"{name}: not an image classifier: output shape {out}, expected one "
                          "vector per image, (None, classes) (see edge/manifest.py)")
    return int(shape[1]), int(shape[2])


def output_width(model) -> int:
    """Length of the model's output vector (``image_input_size`` checked its shape)."""
    return int(model.output_shape[-1])


def check_outputs(model, manifest, name: str = "model") -> None:
    """The model's output width must be what its manifest describes (before the guard)."""
    width = output_width(model)
    if manifest.output == "softmax" and width != len(manifest.labels):
        raise ExportError(f"{name}: {len(manifest.labels)} labels ({', '.join(manifest.labels)}) "
                          f"but the model outputs {width} values; pass one name per output, in "
                          "order, with --labels")
    if manifest.output == "sigmoid" and width != manifest.output_size:
        raise ExportError(f"{name}: the model outputs {width} values, its manifest describes "
                          f"{manifest.output_size} (one sigmoid probability); pass --labels "
                          "with one name per output for a softmax classifier")


def ensure_writable(out_dir: Path) -> Path:
    """Create ``out_dir`` and prove a file can be written there, or raise ``ExportError``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ExportError(f"{out_dir}: output folder is not writable ({e.strerror or e}); "
                          "pass --out to a writable folder") from e
    return out_dir


def check_calibration(calibration: np.ndarray | None, size: tuple[int, int],
                      formats: list[Format], minimum: int, log: Callable[[str], None]) -> None:
    """Refuse int8 formats without calibration images; warn below ``minimum`` images."""
    needs = [f.name for f in formats if f.needs_calibration]
    n = 0 if calibration is None else len(calibration)
    if n and (calibration.dtype != np.uint8 or calibration.shape[1:] != (*size, 3)):
        raise ExportError(f"calibration images are {calibration.dtype} {calibration.shape[1:]}, "
                          f"expected uint8 {(*size, 3)} (edge.preprocess.fit_to_input)")
    if needs and n == 0:
        raise ExportError(f"no calibration images found, and {', '.join(needs)} need them; pass "
                          "--data DIR with a folder of training images per class (and "
                          "--calibration-count > 0), or leave these formats out with --formats")
    if needs and n < minimum:
        log(f"warning: only {n} calibration images (fewer than {minimum}); int8 activation "
            "ranges may be poor: use more training images (--calibration-count)")
