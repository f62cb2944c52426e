"""Augmented views that mimic other dermoscopes, in numpy/OpenCV on decoded RGB images.

Each view is drawn from a seeded generator, so view ``k`` of an image is the same in every
run (the feature cache relies on it). View 0 is the image itself. The others combine:
geometry (flips, 90-degree turns, a small rotation, zoom crop, aspect 0.75..1.33: covers
the Kaggle set's squeezed 4:3 frames and HAM10000's centre squares), a dermoscope ring
(dark vignette outside a random circle), white balance and hue, brightness/contrast,
blur, and JPEG re-compression.

Two recipes (``RECIPES``): ``dermoscope`` (the above) and ``acquisition``, which widens it to
what separates a phone photo or another clinic's dermoscope from the training images: lesion
size in the frame (zoom in 1.0..1.8, or out to 0.55 so the lesion is small in a frame of skin),
stronger white balance and exposure (gamma), defocus or motion blur, JPEG quality 20..95, a
dermoscope ring on a quarter of the views and none on the rest.

Example:
    >>> import numpy as np
    >>> img = np.full((60, 80, 3), 128, np.uint8)
    >>> view(img, 0, seed=1) is img, view(img, 3, seed=1).dtype
    (True, dtype('uint8'))
    >>> view(img, 2, seed=1, recipe="acquisition").shape[2]
    3
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np


def _rng(key: str, k: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(key.encode()), k, seed])


RECIPES = ("dermoscope", "acquisition")
RECIPE_TEXT = {  # each recipe in words (a run's description: research/typed_run.py describe)
    "dermoscope": "flips, 90-degree turns, a small rotation, zoom crop and aspect 0.75..1.33, a "
                  "dermoscope ring, white balance and hue, brightness/contrast, blur and JPEG "
                  "re-compression",
    "acquisition": "the dermoscope recipe widened to what separates a phone photo or another "
                   "clinic's dermoscope: lesion size in the frame (zoom in 1.0..1.8 or out to "
                   "0.55), stronger white balance and exposure, defocus or motion blur, JPEG "
                   "quality 20..95, a dermoscope ring on a quarter of the views",
}


def view(rgb: np.ndarray, k: int, seed: int = 0, key: str = "",
         recipe: str = "dermoscope") -> np.ndarray:
    """View ``k`` of ``rgb`` (uint8 RGB, any size); ``k == 0`` returns ``rgb`` itself."""
    if k == 0:
        return rgb
    if recipe not in RECIPES:
        raise ValueError(f"unknown view recipe {recipe!r}; choose one of {RECIPES}")
    r = _rng(key, k, seed)
    if recipe == "acquisition":
        return _acquisition(rgb, r)
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


def _acquisition(rgb: np.ndarray, r: np.random.Generator) -> np.ndarray:
    img = _geometry(rgb, r, zoom=(0.55, 1.8))
    if r.random() < 0.25:
        img = _ring(img, r)
    img = _colour(img, r, wb=0.3, gamma=0.45)
    u = r.random()
    if u < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), float(r.uniform(0.6, 2.5)))
    elif u < 0.4:
        img = _motion_blur(img, r)
    if r.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(20, 96))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)


def _motion_blur(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    n = int(r.integers(3, 12)) | 1
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2] = 1.0 / n
    m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(r.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, m, (n, n))
    return cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))


def _geometry(img: np.ndarray, r: np.random.Generator,
              zoom: tuple[float, float] = (1.0, 1.25)) -> np.ndarray:
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
    angle = float(r.uniform(-20, 20))
    scale = (float(np.exp(r.uniform(np.log(zoom[0]), np.log(zoom[1])))) if zoom[0] < 1
             else float(r.uniform(*zoom)))  # zoom out and in: log-uniform
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _ring(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    radius, soft = float(r.uniform(0.85, 1.3)), float(r.uniform(0.03, 0.15))
    mask = np.clip((radius - d) / soft, 0, 1)[..., None]
    return (img * mask).astype(np.uint8)


def _colour(img: np.ndarray, r: np.random.Generator, wb: float = 0.2,
            gamma: float = 0.0) -> np.ndarray:
    x = img.astype(np.float32)
    if gamma:  # exposure: a power curve on 0..1
        x = 255.0 * (x / 255.0) ** float(np.exp(r.uniform(-gamma, gamma)))
    x *= r.uniform(1 - wb, 1 + wb, size=3).astype(np.float32)  # white balance
    x = (x - x.mean()) * float(r.uniform(0.8, 1.2)) + x.mean() * float(r.uniform(0.85, 1.15))
    x = np.clip(x, 0, 255).astype(np.uint8)
    if r.random() < 0.5:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(r.integers(-8, 9))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * float(r.uniform(0.8, 1.2)), 0, 255).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x
