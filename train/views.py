"""Augmented views that mimic other dermoscopes, in numpy/OpenCV on decoded RGB images.

Each view is drawn from a seeded generator, so view ``k`` of an image is the same in every
run (the feature cache relies on it). View 0 is the image itself. The others combine:
geometry (flips, 90-degree turns, a small rotation, zoom crop, aspect 0.75..1.33: covers
the Kaggle set's squeezed 4:3 frames and HAM10000's centre squares), a dermoscope ring
(dark vignette outside a random circle), white balance and hue, brightness/contrast,
blur, and JPEG re-compression.

Example:
    >>> import numpy as np
    >>> img = np.full((60, 80, 3), 128, np.uint8)
    >>> view(img, 0, seed=1) is img, view(img, 3, seed=1).dtype
    (True, dtype('uint8'))
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np


def _rng(key: str, k: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(key.encode()), k, seed])


def view(rgb: np.ndarray, k: int, seed: int = 0, key: str = "") -> np.ndarray:
    """View ``k`` of ``rgb`` (uint8 RGB, any size); ``k == 0`` returns ``rgb`` itself."""
    if k == 0:
        return rgb
    r = _rng(key, k, seed)
    img = _geometry(rgb, r)
    if r.random() < 0.3:
        img = _ring(img, r)
    img = _colour(img, r)
    if r.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(r.uniform(0.5, 1.6)))
    if r.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(30, 90))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)


def _geometry(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    aspect = float(np.exp(r.uniform(np.log(0.75), np.log(4 / 3))))
    img = cv2.resize(img, (max(1, round(w * aspect)), h), interpolation=cv2.INTER_AREA
                     if aspect < 1 else cv2.INTER_LINEAR)
    if r.random() < 0.5:
        img = img[:, ::-1]
    if r.random() < 0.5:
        img = img[::-1]
    img = np.rot90(img, int(r.integers(0, 4)))
    h, w = img.shape[:2]
    angle, zoom = float(r.uniform(-20, 20)), float(r.uniform(1.0, 1.25))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _ring(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    radius, soft = float(r.uniform(0.85, 1.3)), float(r.uniform(0.03, 0.15))
    mask = np.clip((radius - d) / soft, 0, 1)[..., None]
    return (img * mask).astype(np.uint8)


def _colour(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    x *= r.uniform(0.8, 1.2, size=3).astype(np.float32)  # white balance
    x = (x - x.mean()) * float(r.uniform(0.8, 1.2)) + x.mean() * float(r.uniform(0.85, 1.15))
    x = np.clip(x, 0, 255).astype(np.uint8)
    if r.random() < 0.5:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(r.integers(-8, 9))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * float(r.uniform(0.8, 1.2)), 0, 255).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x
