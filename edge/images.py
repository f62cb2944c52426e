"""Safe image decoding with OpenCV: every file becomes an RGB uint8 array or a clear error.

Used by the training data loader and the edge runner alike, so a photo is decoded the same
way everywhere. Handles grayscale, alpha (dropped), 16-bit (scaled to 8-bit), CMYK JPEG,
EXIF orientation, and very large images (JPEGs decoded at reduced scale, no memory blow-up).

Example:
    >>> import numpy as np, cv2, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png"
    >>> _ = cv2.imwrite(str(p), np.zeros((4, 6), np.uint8))
    >>> load_rgb(p).shape
    (4, 6, 3)
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_SIDE = 4096  # larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself
MAX_PIXELS = 100_000_000  # non-JPEG images above this are refused instead of decoded


class ImageError(ValueError):
    """An input image cannot be used; ``str(e)`` is one line naming the file and the fix."""

    def __init__(self, path: str | Path, reason: str, fix: str = ""):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}" + (f" ({fix})" if fix else ""))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a JPEG/PNG header without decoding; ``None`` if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + seglen
    return None


def _check_complete(path: Path, data: bytes) -> None:
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise ImageError(path, "truncated or corrupt JPEG (no end-of-image marker)",
                         "re-export or re-download the file")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        raise ImageError(path, "truncated or corrupt PNG (no IEND chunk)",
                         "re-export or re-download the file")


def decode_rgb(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an ``(H, W, 3)`` uint8 RGB array."""
    path = Path(path) if not isinstance(path, Path) else path
    if len(data) == 0:
        raise ImageError(path, "empty file (0 bytes)", "replace it with a real image")
    _check_complete(path, data)
    size = image_size(data)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    if size is not None:
        w, h = size
        if w * h == 0:
            raise ImageError(path, f"image header says {w}x{h} pixels", "use a real image")
        if max(w, h) > MAX_SIDE and data[:2] == b"\xff\xd8":
            factor = 2 if max(w, h) <= 2 * MAX_SIDE else 4 if max(w, h) <= 4 * MAX_SIDE else 8
            flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                     8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        elif w * h > MAX_PIXELS:
            raise ImageError(path, f"image too large ({w}x{h} pixels)",
                             f"downscale it below {MAX_PIXELS // 1_000_000} megapixels")
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise ImageError(path, f"OpenCV cannot decode it ({str(e).strip().splitlines()[-1]})",
                         "use a JPEG or PNG image") from e
    if img is None:
        raise ImageError(path, "not a decodable image", "use a JPEG or PNG image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # the one BGR->RGB conversion for files


def load_rgb(path: str | Path) -> np.ndarray:
    """Read and decode an image file to RGB uint8, or raise ``ImageError`` (one line)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "file not found", "check the path")
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image", "pass image files")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror})", "check permissions") from e
    return decode_rgb(data, path)
