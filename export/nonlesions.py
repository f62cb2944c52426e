"""Generated non-lesion images: what a camera sees when no lesion is in view.

Rendered text, flat colours (skin tones included), noise, gradients, checkerboards, stripes,
random shapes and blurred versions of them, as RGB uint8. Export uses them (nothing is
downloaded) to measure the guard's rejection rate (``guard.stats``) and to widen the int8
calibration range of the guard's distance (``export/guard.py``); tests draw their own with
other seeds. A seed fixes the whole set, so "fitted on" and "checked with" never overlap.

Example:
    >>> imgs, kinds = generate(9, 64, seed=3)
    >>> imgs.shape, imgs.dtype, kinds[:3]
    ((9, 64, 64, 3), dtype('uint8'), ['text', 'flat', 'noise'])
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("text", "flat", "noise", "gradient", "checkerboard", "stripes", "shapes", "blurred",
         "skin_field")
_WORDS = ("the quick brown fox", "INVOICE 2026", "hello world", "page 17 of 240", "exit",
          "skin lesion?", "lorem ipsum dolor", "0123456789", "Raspberry Pi", "NO ENTRY")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    """A skin tone, light to dark."""
    t = rng.uniform(0, 1)
    base = np.array([230, 190, 165]) * (1 - t) + np.array([95, 60, 40]) * t
    return tuple(int(v) for v in np.clip(base + rng.normal(0, 8, 3), 0, 255))


def _text(rng, s):
    img = np.full((s, s, 3), _colour(rng) if rng.uniform() < 0.5 else (245, 245, 240), np.uint8)
    ink = tuple(int(v) for v in rng.integers(0, 90, 3))
    for i in range(int(rng.integers(3, 9))):
        scale = s / 260 * rng.uniform(0.6, 1.4)
        y = int((i + 1) * s / 9 + rng.integers(-3, 4))
        cv2.putText(img, str(rng.choice(_WORDS)), (int(rng.integers(0, s // 5)), y),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, ink, max(1, int(scale * 2)), cv2.LINE_AA)
    return img


def _flat(rng, s):
    c = _skin(rng) if rng.uniform() < 0.4 else _colour(rng)
    img = np.full((s, s, 3), c, np.float32) + rng.normal(0, rng.uniform(0, 3), (s, s, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _noise(rng, s):
    if rng.uniform() < 0.5:
        return rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    img = rng.normal(rng.uniform(60, 200), rng.uniform(10, 60), (s, s, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _gradient(rng, s):
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    t = np.linspace(0, 1, s, dtype=np.float32)
    ang = rng.uniform(0, np.pi)
    w = np.clip(np.cos(ang) * t[None, :] + np.sin(ang) * t[:, None], 0, None)
    w = w / max(float(w.max()), 1e-6)
    return (a * (1 - w[..., None]) + b * w[..., None]).astype(np.uint8)


def _checkerboard(rng, s):
    n = int(rng.integers(2, 16))
    yy, xx = np.mgrid[0:s, 0:s] * n // s
    mask = ((yy + xx) % 2).astype(bool)
    img = np.empty((s, s, 3), np.uint8)
    img[mask], img[~mask] = _colour(rng), _colour(rng)
    return img


def _stripes(rng, s):
    period = rng.uniform(4, s / 3)
    ang = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    mask = (np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * 2 * np.pi / period) > 0)
    img = np.empty((s, s, 3), np.uint8)
    img[mask], img[~mask] = _colour(rng), _colour(rng)
    return img


def _shapes(rng, s):
    img = np.full((s, s, 3), _colour(rng), np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        c, p = _colour(rng), tuple(int(v) for v in rng.integers(0, s, 2))
        kind = rng.integers(0, 3)
        if kind == 0:
            q = tuple(int(v) for v in rng.integers(0, s, 2))
            cv2.rectangle(img, p, q, c, -1 if rng.uniform() < 0.6 else 2)
        elif kind == 1:
            cv2.circle(img, p, int(rng.integers(2, max(3, s // 4))), c, -1)
        else:
            q = tuple(int(v) for v in rng.integers(0, s, 2))
            cv2.line(img, p, q, c, int(rng.integers(1, max(2, s // 20))))
    return img


def _blurred(rng, s):
    src = (_shapes, _text, _checkerboard)[int(rng.integers(0, 3))](rng, s)
    k = int(s * rng.uniform(0.05, 0.15)) | 1
    return cv2.GaussianBlur(src, (k, k), 0)


def _skin_field(rng, s):
    """Plain skin with texture and no lesion: the hardest common case for a guard."""
    img = np.full((s, s, 3), _skin(rng), np.float32)
    img += cv2.GaussianBlur(rng.normal(0, 12, (s, s, 3)).astype(np.float32), (5, 5), 0)
    img += rng.normal(0, 4, (s, s, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


_MAKERS = {"text": _text, "flat": _flat, "noise": _noise, "gradient": _gradient,
           "checkerboard": _checkerboard, "stripes": _stripes, "shapes": _shapes,
           "blurred": _blurred, "skin_field": _skin_field}


def generate(n: int, size: int = 128, seed: int = 0,
             kinds: tuple[str, ...] = KINDS) -> tuple[np.ndarray, list[str]]:
    """``n`` images ``[n, size, size, 3]`` uint8 cycling through ``kinds``, and their kinds."""
    rng = np.random.default_rng(seed)
    names = [kinds[i % len(kinds)] for i in range(n)]
    imgs = [_MAKERS[k](rng, size) for k in names]
    return (np.stack(imgs) if imgs else np.zeros((0, size, size, 3), np.uint8)), names
