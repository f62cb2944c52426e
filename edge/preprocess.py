"""The one preprocessing function: RGB image -> model input tensor, driven by the manifest.

Training (``train/data.py``), the file runner and the camera loop all call
``fit_to_input``; the runtime wrappers call ``to_model_input``. There is no other copy.

Steps: centre-crop to a square (a no-op for the square training images), resize to the
model's input size with ``cv2.INTER_AREA`` when shrinking or ``INTER_LINEAR`` when
enlarging, optionally fill a dark dermoscope border (``Manifest.border``, see
``fill_dark_border``) and then apply colour constancy (``Manifest.color_constancy``, see
``shades_of_gray``) to the resized image, keep RGB uint8 pixels 0..255 (the model scales
them itself), then cast to float32 or quantize with the artifact's own input scale and
zero point.

A TensorFlow re-implementation (``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` +
``tf.image.resize(method="area")``) lands within 1 grey level of this; TF's default (fast
IDCT) JPEG decoder does not (up to ~18 grey levels). See ``tests/test_edge_preprocess.py``.

Example:
    >>> import numpy as np
    >>> fit_to_input(np.zeros((300, 400, 3), np.uint8), 96, 96).shape
    (96, 96, 3)
    >>> to_model_input(np.full((2, 2, 3), 255, np.uint8), "int8", 1.0, -128)[0, 0, 0]
    array([127, 127, 127], dtype=int8)
    >>> img = np.zeros((2, 2, 3), np.uint8); img[..., 0], img[..., 2] = 200, 100
    >>> shades_of_gray(img)[0, 0]          # a red cast pulled towards grey
    array([100,   0, 100], dtype=uint8)
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def center_square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return rgb[top : top + s, left : left + s]


COLOR_CONSTANCY = ("none", "shades_of_gray")
SHADES_OF_GRAY_P = 6.0
BORDERS = ("none", "fill_dark")
DARK_BORDER_LEVEL, DARK_BORDER_GROW = 40, 4  # grey level; pixels the filled region grows by
DARK_BORDER_MIN, DARK_BORDER_MAX = 0.005, 0.7  # share of the image: below/above, no change


def fit_to_input(rgb: np.ndarray, height: int, width: int,
                 color_constancy: str = "none", border: str = "none") -> np.ndarray:
    """Centre-crop to square, resize to ``(height, width, 3)`` uint8 RGB, then the corrections
    (``apply_corrections``: border, then colour constancy)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    sq = center_square(rgb) if height == width else rgb
    if sq.shape[0] == height and sq.shape[1] == width:
        out = np.ascontiguousarray(sq, dtype=np.uint8)
    else:
        shrink = sq.shape[0] > height or sq.shape[1] > width
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        out = cv2.resize(sq, (width, height), interpolation=interp)
    return apply_corrections(out, color_constancy, border)


def apply_corrections(img: np.ndarray, color_constancy: str = "none",
                      border: str = "none") -> np.ndarray:
    """The manifest's corrections of a sized image, in order: border, then colour constancy."""
    return apply_color_constancy(apply_border(img, border), color_constancy)


def apply_border(img: np.ndarray, method: str = "none") -> np.ndarray:
    """``img`` unchanged for ``"none"``, else ``fill_dark_border(img)``; unknown names raise."""
    if method in ("", "none"):
        return img
    if method == "fill_dark":
        return fill_dark_border(img)
    raise ValueError(f"unknown border correction {method!r}; use one of {BORDERS}")


def fill_dark_border(img: np.ndarray) -> np.ndarray:
    """Fill the dark ring or corners a dermoscope leaves around its field of view.

    The exact definition (the browser app re-implements it; keep both in step): grey level
    ``(4899 R + 9617 G + 1868 B + 8192) >> 14`` (OpenCV's integer RGB to grey); the dark
    region is every pixel with grey < ``DARK_BORDER_LEVEL``
    that is 8-connected, through such pixels, to the image's edge. If it covers less than
    ``DARK_BORDER_MIN`` or more than ``DARK_BORDER_MAX`` of the image, the image is returned
    unchanged (the same object). Otherwise the region is grown by ``DARK_BORDER_GROW`` pixels
    (a square window, ``cv2.dilate``) and every pixel in it gets the per-channel median of the
    pixels outside it (``np.median``, cast to uint8: a half is dropped); unchanged if no pixel
    is left outside.

    A model trained on the Kaggle set learned dark corners as a sign of melanoma: under a
    simulated ring, its validation specificity fell to near 0 (docs/experiments.md).

    >>> x = np.full((20, 20, 3), 150, np.uint8); x[:3, :3] = 0
    >>> y = fill_dark_border(x)
    >>> int(y[0, 0, 0]), int(y[10, 10, 0]), fill_dark_border(y) is y
    (150, 150, True)
    """
    c = img.astype(np.int32)
    lum = (c[..., 0] * 4899 + c[..., 1] * 9617 + c[..., 2] * 1868 + 8192) >> 14
    _, lab = cv2.connectedComponents((lum < DARK_BORDER_LEVEL).astype(np.uint8), connectivity=8)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    mask = np.isin(lab, edge[edge > 0])
    if not DARK_BORDER_MIN <= mask.mean() <= DARK_BORDER_MAX:
        return img
    k = 2 * DARK_BORDER_GROW + 1
    mask = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    if mask.all():
        return img
    out = img.copy()
    out[mask] = np.median(img[~mask], axis=0).astype(np.uint8)
    return out


def apply_color_constancy(img: np.ndarray, method: str = "none") -> np.ndarray:
    """``img`` unchanged for ``"none"``, else ``shades_of_gray(img)``; unknown names raise."""
    if method in ("", "none"):
        return img
    if method == "shades_of_gray":
        return shades_of_gray(img)
    raise ValueError(f"unknown colour constancy {method!r}; use one of {COLOR_CONSTANCY}")


def shades_of_gray(img: np.ndarray, p: float = SHADES_OF_GRAY_P) -> np.ndarray:
    """Shades of Gray colour constancy (Finlayson & Trezzi 2004) on uint8 RGB.

    The exact definition (the browser app re-implements it; keep both in step):
    ``e_c = mean(x_c ** p) ** (1/p)`` per channel over all pixels in float32 (``x`` in
    0..255), ``gain_c = mean(e) / e_c`` (a channel with ``e_c == 0`` keeps gain 1), output
    ``clip(rint(x_c * gain_c), 0, 255)`` as uint8.
    """
    x = img.astype(np.float32)
    e = np.power(np.mean(np.power(x.reshape(-1, 3) / 255.0, p), axis=0), 1.0 / p) * 255.0
    gain = np.where(e > 0, float(e.mean()) / np.maximum(e, 1e-12), 1.0).astype(np.float32)
    return np.clip(np.rint(x * gain), 0, 255).astype(np.uint8)


PIXELS = (0.0, 255.0)  # Manifest.pixel_range of the project's own models (they scale inside)


def model_pixels(img: np.ndarray, pixel_range=PIXELS, color_order: str = "RGB") -> np.ndarray:
    """uint8 RGB pixels (any leading shape) -> the float32 values a model was trained on.

    ``pixel_range`` ``(lo, hi)``: 0 maps to ``lo`` and 255 to ``hi``, linearly
    (``x * (hi - lo) / 255 + lo``; the identity for (0, 255)); ``color_order`` ``"BGR"`` reverses
    the channels. Export (calibration, parity) and every runner call this one function.

    >>> model_pixels(np.array([[0, 255, 51]], np.uint8), (-1, 1), "BGR").astype(float).round(2).tolist()
    [[-0.6, 1.0, -1.0]]
    """
    x = img[..., ::-1] if color_order.upper() == "BGR" else img
    lo, hi = float(pixel_range[0]), float(pixel_range[1])
    if (lo, hi) == PIXELS:
        return x.astype(np.float32)
    return (x.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(np.float32)


def to_model_input(img: np.ndarray, dtype: str, scale: float = 0.0, zero_point: int = 0,
                   pixel_range=PIXELS, color_order: str = "RGB") -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(1, H, W, 3)`` tensor of ``dtype`` (quantized if int8/uint8),
    holding ``model_pixels(img, pixel_range, color_order)``."""
    if dtype in ("int8", "uint8") and scale > 0:
        if img.dtype == np.uint8:  # 256-entry lookup table: same values, 3-4x faster
            lut = _quant_lut(dtype, float(scale), int(zero_point), *map(float, pixel_range))
            return lut[img[..., ::-1] if color_order.upper() == "BGR" else img][None]
        return _quantize(model_pixels(img, pixel_range, color_order), dtype, scale,
                         zero_point)[None]
    return model_pixels(img, pixel_range, color_order)[None].astype(dtype)


def _quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


@lru_cache(maxsize=8)
def _quant_lut(dtype: str, scale: float, zero_point: int, lo: float = 0.0,
               hi: float = 255.0) -> np.ndarray:
    values = model_pixels(np.arange(256, dtype=np.uint8)[:, None].repeat(3, 1), (lo, hi))[:, 0]
    return _quantize(values, dtype, scale, zero_point)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of a quantized output tensor."""
    if scale <= 0:
        return q.astype(np.float32)
    return (q.astype(np.float32) - zero_point) * scale
