"""The page's preprocessing (web/src/preprocess.js, quality.js) against edge/preprocess.py.

Runs the JavaScript modules in Node (the same files the page loads) on real test images and
compares pixel by pixel with OpenCV: INTER_AREA shrinking (integer and non-integer factors)
and INTER_LINEAR enlarging (OpenCV's fixed-point arithmetic) must be exact;
the dark-border fill, Shades of Gray and input quantization exact; the quality-gate
measurements as the
QualityGate docstring defines.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.images import load_rgb
from edge.preprocess import fill_dark_border, fit_to_input, shades_of_gray, to_model_input

pytestmark = pytest.mark.web
ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "web" / "src"
NODE_SCRIPT = """
import { readFileSync, writeFileSync } from "node:fs";
const pre = await import(process.argv[1] + "/preprocess.js");
const qual = await import(process.argv[1] + "/quality.js");
const jobs = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const j of jobs) {
  const img = { width: j.w, height: j.h, data: new Uint8Array(readFileSync(j.file)) };
  let r;
  if (j.op === "fit") r = pre.fitToInput(img, j.args[0], j.args[1]).data;
  if (j.op === "sog") r = pre.shadesOfGray(img).data;
  if (j.op === "border") r = pre.applyBorder(img, "fill_dark").data;
  if (j.op === "quant") r = new Uint8Array(pre.toModelInput(img, ...j.args).buffer);
  if (j.op === "quality") {
    const s = qual.qualityStats(img);
    out.push({ brightness: s.brightness, median: s.median, sharpness: s.sharpness,
               reason: qual.qualityReason(j.args[0], img, j.h, j.w) });
    continue;
  }
  writeFileSync(j.file + ".out", r);
  out.push(null);
}
process.stdout.write(JSON.stringify(out));
"""


def run_js(tmp: Path, jobs: list[tuple[np.ndarray, str, list]]) -> list:
    """Run preprocess.js / quality.js on each (image, op, args); outputs as arrays or dicts."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the web tests need Node.js 20 (apt-get install nodejs)",
                    pytrace=False)
    spec = []
    for k, (img, op, args) in enumerate(jobs):
        f = tmp / f"in{k}.rgb"
        f.write_bytes(np.ascontiguousarray(img).tobytes())
        spec.append({"file": str(f), "w": img.shape[1], "h": img.shape[0], "op": op, "args": args})
    res = subprocess.run([node, "--input-type=module", "-e", NODE_SCRIPT, SRC.as_uri()],
                         input=json.dumps(spec), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    return [m if m is not None else np.fromfile(s["file"] + ".out", np.uint8)
            for m, s in zip(meta, spec)]


@pytest.fixture(scope="module")
def real_images() -> list[np.ndarray]:
    from tests.test_web import real_test_images  # the data dir as train/data.py resolves it

    return [load_rgb(f) for f in real_test_images(12)[6:]]


SHRINK = [(360, 480), (300, 400), (1000, 1000), (225, 225), (449, 449), (448, 448),
          (672, 672), (896, 1200), (250, 333)]


def test_area_resize_is_exact(tmp_path, real_images):
    jobs, want = [], []
    for k, (h, w) in enumerate(SHRINK):
        img = cv2.resize(real_images[k % len(real_images)], (w, h), interpolation=cv2.INTER_CUBIC)
        jobs.append((img, "fit", [224, 224]))
        want.append(fit_to_input(img, 224, 224))
    jobs.append((want[0], "fit", [97, 97]))  # a second, odd factor
    want.append(fit_to_input(want[0], 97, 97))
    for (h, w), got, ref in zip(SHRINK + [(224, 224)], run_js(tmp_path, jobs), want):
        diff = np.abs(got.reshape(ref.shape).astype(int) - ref)
        assert diff.max() == 0, f"{w}x{h}: {np.count_nonzero(diff)} values differ"


ENLARGE = [((130, 100), (224, 224)), ((37, 37), (224, 224)), ((223, 223), (224, 224)),
           ((200, 200), (301, 301)), ((150, 150), (200, 260))]


def test_linear_enlarge_is_exact(tmp_path, real_images):
    jobs, want = [], []
    for (h, w), (dh, dw) in ENLARGE:
        small = cv2.resize(real_images[0], (w, h), interpolation=cv2.INTER_AREA)
        jobs.append((small, "fit", [dh, dw]))
        want.append(fit_to_input(small, dh, dw))
    for (src, dst), got, ref in zip(ENLARGE, run_js(tmp_path, jobs), want):
        diff = np.abs(got.reshape(ref.shape).astype(int) - ref)
        assert diff.max() == 0, f"{src} -> {dst}: {np.count_nonzero(diff)} values differ"


def test_shades_of_gray_and_quantization(tmp_path, real_images):
    imgs = [fit_to_input(im, 224, 224) for im in real_images]
    jobs = [(im, "sog", []) for im in imgs]
    jobs += [(imgs[0], "quant", ["int8", 1.0, -128]), (imgs[0], "quant", ["uint8", 0.98431, 3])]
    out = run_js(tmp_path, jobs)
    for im, got in zip(imgs, out):
        diff = np.abs(got.reshape(im.shape).astype(int) - shades_of_gray(im))
        assert diff.max() == 0, f"{np.count_nonzero(diff)} values differ"
    assert (out[-2].view(np.int8) == to_model_input(imgs[0], "int8", 1.0, -128).ravel()).all()
    assert (out[-1] == to_model_input(imgs[0], "uint8", 0.98431, 3).ravel()).all()


def test_dark_border_fill(tmp_path, real_images):
    """Rings of several sizes and softness, corners only, and images left alone: exact."""
    from research.shifts import ring_shift as _ring

    imgs = [fit_to_input(im, 224, 224) for im in real_images]
    cases = [_ring(imgs[0], 0.9), _ring(imgs[1], 1.05, 0.02), _ring(imgs[2], 1.3, 0.15),
             _ring(fit_to_input(real_images[3], 97, 97), 0.95),  # odd size, odd pixel count
             imgs[4], np.zeros((32, 32, 3), np.uint8)]  # nothing dark / all dark: unchanged
    cases[2][:3, :] = 0  # a dark strip joining two corners
    want = [fill_dark_border(c) for c in cases]
    assert [w is c for w, c in zip(want, cases)] == [False] * 4 + [True, True]
    for c, w, got in zip(cases, want, run_js(tmp_path, [(c, "border", []) for c in cases])):
        diff = np.abs(got.reshape(c.shape).astype(int) - w)
        assert diff.max() == 0, f"{np.count_nonzero(diff)} values differ"


def reference_quality(rgb: np.ndarray) -> dict:
    """The QualityGate docstring, in numpy: float32 luma, mean, median, Laplacian variance."""
    y = (np.float32(0.299) * rgb[..., 0] + np.float32(0.587) * rgb[..., 1]
         + np.float32(0.114) * rgb[..., 2]).astype(np.float32)
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    return {"brightness": float(y.mean(dtype=np.float64)), "median": float(np.median(y)),
            "sharpness": float(lap.var(dtype=np.float64)), "luma": y}


def test_quality_gate_measurements_and_reasons(tmp_path, real_images):
    img = fit_to_input(real_images[1], 224, 224)
    gate = {"enabled": True, "min_side": 32, "min_brightness": 20, "max_brightness": 240,
            "flat_tolerance": 6, "max_flat_fraction": 0.9, "min_sharpness": 0}
    blurred = cv2.GaussianBlur(img, (0, 0), 6)
    sharp_gate = {**gate, "min_sharpness": reference_quality(img)["sharpness"] / 2}
    grey = np.full_like(img, 128)
    jobs = [(img, "quality", [gate]), (img // 10, "quality", [gate]),
            (np.full_like(img, 250), "quality", [gate]), (grey, "quality", [gate]),
            (blurred, "quality", [sharp_gate]), (img, "quality", [sharp_gate]),
            (img[:20, :30], "quality", [gate]), (img, "quality", [{**gate, "enabled": False}])]
    out = run_js(tmp_path, jobs)
    ref = reference_quality(img)
    for key in ("brightness", "median", "sharpness"):
        assert out[0][key] == pytest.approx(ref[key], rel=1e-5, abs=1e-4), key
    assert [o["reason"] for o in out] == ["", "too_dark", "too_bright", "flat", "blurred", "",
                                          "too_small", ""]
