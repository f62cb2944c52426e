"""End-to-end stage timing through the edge runner's own code, and the camera loop's FPS.

Per image file: ``decode`` (``edge.images.load_rgb``), ``preprocess``
(``Classifier.prepare``: crop, resize, quantize), ``invoke`` (``Classifier.raw_outputs``:
run + dequantize), ``postprocess`` (``Manifest.read``: calibrate, label) and ``total``.
The camera loop is the edge runner's own ``edge.camera.run_loop`` (capture through
``cv2.VideoCapture``, BGR->RGB, ``Classifier.predict_rgb``) reading a real video file written
here from the same images with ``cv2.VideoWriter`` at 640x480, like a USB webcam; FPS =
frames / wall time of the whole loop, capture included.

Example:
    >>> video = write_video(paths, Path("/tmp/cam.mp4"), frames=120)          # doctest: +SKIP
    >>> r = measure_e2e({"path": "model_int8.tflite", "images": [str(p) for p in paths],
    ...                  "video": str(video), "threads": 2})                    # doctest: +SKIP
    >>> r["total_p50_ms"], r["camera_fps"]                                    # doctest: +SKIP
    (2.9, 180.4)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("decode", "preprocess", "invoke", "postprocess", "total")
FRAME_SIZE = (640, 480)  # (width, height) of the synthetic camera video


class E2EError(RuntimeError):
    """No usable images or video; the message names the path and the fix."""


def write_video(images: list[Path], path: Path, frames: int = 120, fps: float = 30.0,
                size: tuple[int, int] = FRAME_SIZE) -> Path:
    """Write ``frames`` frames cycling through ``images`` to an MPEG-4 file (``mp4v``)."""
    import cv2

    from edge.images import ImageError, load_rgb

    rgbs = []
    for p in images:
        try:
            rgbs.append(cv2.resize(load_rgb(p), size, interpolation=cv2.INTER_LINEAR))
        except ImageError:
            continue
        if len(rgbs) >= frames:
            break
    if not rgbs:
        raise E2EError(f"{path}: no decodable image to write a test video from")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise E2EError(f"{path}: OpenCV cannot write mp4v video here")
    for i in range(frames):
        writer.write(cv2.cvtColor(rgbs[i % len(rgbs)], cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _stats(ms: list[float], name: str) -> dict[str, float]:
    from benchmarks.stats import LatencyStats

    s = LatencyStats.from_ms(ms)
    return {f"{name}_p50_ms": s.p50, f"{name}_p90_ms": s.p90, f"{name}_mean_ms": s.mean}


def time_files(clf: Any, paths: list[str]) -> dict[str, Any]:
    """Stage timings over image files; undecodable files are counted and skipped."""
    from edge.images import ImageError, load_rgb

    times: dict[str, list[float]] = {s: [] for s in STAGES}
    bad = 0
    for p in paths:
        t0 = time.perf_counter()
        try:
            rgb = load_rgb(p)
        except ImageError:
            bad += 1
            continue
        t1 = time.perf_counter()
        x = clf.prepare(rgb)
        t2 = time.perf_counter()
        vec = clf.raw_outputs(x)
        t3 = time.perf_counter()
        clf.manifest.read(vec)
        t4 = time.perf_counter()
        for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t0, t4)),
                                   strict=True):
            times[stage].append((b - a) * 1000)
    if not times["total"]:
        raise E2EError(f"none of the {len(paths)} images could be decoded "
                       "(pass --images DIR with JPEG/PNG files)")
    out: dict[str, Any] = {"images": len(times["total"]), "bad_images": bad}
    for stage in STAGES:
        out.update(_stats(times[stage], stage))
    out["files_per_s"] = 1000.0 / out["total_mean_ms"]
    return out


def camera_fps(clf: Any, video: str) -> dict[str, Any]:
    """Run the edge camera loop (``edge.camera.run_loop``) over every frame of ``video``."""
    from edge.camera import LoopStats, run_loop

    stats, capture = LoopStats(), []
    t_start = time.perf_counter()
    for frame in run_loop(clf, Path(video), stats=stats):
        capture.append(frame.capture_ms)
    elapsed = time.perf_counter() - t_start
    if not capture:
        raise E2EError(f"{video}: the camera loop read no frames ({stats.ended})")
    return {"camera_frames": len(capture), "camera_fps": len(capture) / elapsed,
            "capture_p50_ms": float(np.median(capture)),
            "camera_source": "edge.camera.run_loop on an mp4 file"}


def measure_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    """Child entry: stage timings over ``spec['images']``, camera FPS over ``spec['video']``."""
    from edge.classifier import Classifier

    clf = Classifier(spec["path"], spec.get("backend", "auto"), spec.get("threads"))
    paths = list(spec.get("images") or [])
    if paths:  # warm-up: first-call costs are measured by the latency cases, not here
        time_files(clf, paths[:3])
    out: dict[str, Any] = {"backend": clf.backend}
    out.update(time_files(clf, paths) if paths else {"images": 0})
    if spec.get("video"):
        out.update(camera_fps(clf, spec["video"]))
    return out
