"""Bad-input matrix at the decoder and input-expansion level (no model needed).

Each awkward file is made for real (OpenCV/Pillow writers, byte surgery) and decoded with
``edge.images.load_rgb``: the good-but-odd ones become RGB uint8 with the right content,
the broken ones raise ``ImageError`` with one line that names the file.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.images import MAX_SIDE, ImageError, load_rgb
from edge.inputs import expand_inputs, natural_key, spread

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _solid(h: int, w: int, rgb=(200, 40, 10)) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


def _assert_one_line_error(path: Path, *words: str) -> str:
    with pytest.raises(ImageError) as e:
        load_rgb(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    for w in words:
        assert w in msg.lower(), msg
    return msg


# ------------------------------------------------------------------ broken files -> ImageError
def test_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nope.jpg", "not found")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    _assert_one_line_error(p, "empty")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_jpeg(tmp_path, keep):
    good = _write(tmp_path / "good.jpg", np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: int(len(data) * keep)])
    _assert_one_line_error(p, "truncated")


def test_corrupt_jpeg_body(tmp_path):
    """Garbage inside the entropy-coded data (markers intact) decodes to *something* or fails
    cleanly; it must never crash the process."""
    good = _write(tmp_path / "good.jpg", _solid(64, 64))
    data = bytearray(good.read_bytes())
    data[200:260] = b"\xff\x00" * 30
    p = tmp_path / "corrupt.jpg"
    p.write_bytes(bytes(data))
    try:
        assert load_rgb(p).shape == (64, 64, 3)
    except ImageError as e:
        assert str(p) in str(e)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n" * 5)
    _assert_one_line_error(p, "not a decodable image")


def test_folder_passed_as_image(tmp_path):
    _assert_one_line_error(tmp_path, "folder")


# ------------------------------------------------------------------ odd but valid -> RGB uint8
def test_png_with_alpha_drops_alpha(tmp_path):
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 0  # B=10, R=200, fully transparent
    p = tmp_path / "alpha.png"
    cv2.imwrite(str(p), bgra)
    img = load_rgb(p)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (200, 0, 10)  # RGB order, colour kept, alpha dropped


def test_grayscale_becomes_three_equal_channels(tmp_path):
    p = tmp_path / "gray.png"
    cv2.imwrite(str(p), np.full((5, 7), 100, np.uint8))
    img = load_rgb(p)
    assert img.shape == (5, 7, 3) and (img == 100).all()


def test_16bit_png_scaled_to_8bit(tmp_path):
    p = tmp_path / "deep.png"
    bgr16 = np.zeros((4, 4, 3), np.uint16)
    bgr16[..., 2] = 65535  # red at full 16-bit scale
    bgr16[..., 1] = 256 * 100
    cv2.imwrite(str(p), bgr16)
    img = load_rgb(p)
    assert img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 100, 0)


def test_cmyk_jpeg(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    img = load_rgb(p)
    assert img.shape == (12, 16, 3)
    r, g, b = (int(v) for v in img[6, 8])
    assert r > 240 and g < 20 and b < 20


def test_exif_rotated_photo_is_upright(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored; EXIF 6 = rotate 90 deg clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(p, exif=exif, quality=95)
    img = load_rgb(p)
    assert img.shape == (40, 20, 3)  # portrait after applying the orientation
    assert img[2, 10, 0] > 200 and img[-3, 10, 0] < 50  # red half is now on top


def test_one_pixel_image(tmp_path):
    p = _write(tmp_path / "dot.png", _solid(1, 1, (1, 2, 3)))
    assert load_rgb(p).tolist() == [[[1, 2, 3]]]


def test_non_ascii_file_name(tmp_path):
    p = _write(tmp_path / "läsion_日本_ñ.png", _solid(3, 3, (9, 8, 7)))
    assert tuple(load_rgb(p)[0, 0]) == (9, 8, 7)


def test_huge_jpeg_decoded_at_reduced_scale_without_memory_blowup(tmp_path):
    """A 9000x9000 JPEG (243 MB as RGB) is decoded by libjpeg at 1/4 scale: ~15 MB."""
    p = tmp_path / "huge.jpg"
    gray = np.zeros((9000, 9000), np.uint8)
    gray[::50] = 255
    cv2.imwrite(str(p), gray, [cv2.IMWRITE_JPEG_QUALITY, 50])
    del gray
    code = ("import resource, sys; from edge.images import load_rgb; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"img = load_rgb({str(p)!r}); "
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "print(img.shape[0], img.shape[1], (after - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    h, w, grew_mb = (int(v) for v in out)
    assert max(h, w) <= MAX_SIDE and (h, w) == (2250, 2250)
    assert grew_mb < 100, f"decoding grew the process by {grew_mb} MB"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def test_decompression_bomb_png_refused_before_decoding(tmp_path):
    """A PNG whose header claims 30000x30000 pixels (2.7 GB as RGB) is refused up front."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                  + _png_chunk(b"IEND", b""))
    _assert_one_line_error(p, "too large", "30000x30000")


# ------------------------------------------------------------------ input expansion
def test_expand_files_folders_globs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/10.jpg", "a/2.JPG", "a/deep/1.png", "a/readme.txt", "a/.hidden.jpg",
                "b.png", "ü.jpeg"):
        (tmp_path / rel).write_bytes(b"x")
    paths, problems = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.png"),
                                     str(tmp_path / "ü.jpeg"), str(tmp_path / "a" / "2.JPG"),
                                     str(tmp_path / "missing.jpg"), str(tmp_path / "*.gif")])
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert rel == ["a/2.JPG", "a/10.jpg", "a/deep/1.png", "b.png", "ü.jpeg"]  # deduped
    assert [(Path(p.source).name, "found" in p.error or "matches" in p.error)
            for p in problems] == [("missing.jpg", True), ("*.gif", True)]


def test_empty_folder_is_a_problem(tmp_path):
    paths, problems = expand_inputs([str(tmp_path)])
    assert paths == [] and "no image files" in problems[0].error


def test_natural_sort_and_spread():
    names = sorted([Path(f"{n}.jpg") for n in (10, 2, 1, 33)], key=natural_key)
    assert [p.stem for p in names] == ["1", "2", "10", "33"]
    assert spread(list(range(7)), 3) == [0, 3, 6]
    assert spread([1, 2], 5) == [1, 2] and spread([1, 2], None) == [1, 2]
