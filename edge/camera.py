"""Live classification: frames from a camera or video file -> the same ``Classifier.predict_rgb``.

``run_loop`` is the headless core (a generator, also used by the benchmark): read a frame,
crop the region of interest, classify it with exactly the preprocessing used for files.
``run_camera`` adds the window (label, probability, FPS, not-a-medical-device note; "no
lesion in view" or the quality reason instead of a label when the guard or gate says so), the
headless printout, ``--save`` recording, ESC/q/Ctrl-C handling and the summary.

Failed reads are tolerated: a camera may drop frames (up to ``max_failed_reads`` in a row),
and a video file that stops before its announced frame count is reported, not fatal.

Example:
    >>> clf = Classifier("models/model_int8.tflite")                   # doctest: +SKIP
    >>> for r in run_loop(clf, "lesions.mp4", roi=Roi.parse("0.6")):   # doctest: +SKIP
    ...     print(r.index, r.prediction.label)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from edge.classifier import Prediction
from edge.overlay import draw_overlay, gui_problem
from edge.results import Summary, summarize
from edge.sources import CameraError, FrameSource, open_source

MAX_FAILED_READS = 30  # consecutive failed reads before a camera counts as lost
WINDOW = "skin lesion classifier - not a medical device"


@dataclass(frozen=True)
class Roi:
    """Region classified in each frame: a centred square (``fraction`` of the shorter side)
    or a pixel box ``x, y, w, h``. Parse ``"0.6"`` or ``"100,80,300,300"``.

    >>> Roi.parse("0.5").rect((480, 640))
    (200, 120, 240, 240)
    >>> Roi.parse("10,20,30,40").rect((480, 640))
    (10, 20, 30, 40)
    """

    fraction: float | None = None
    box: tuple[int, int, int, int] | None = None

    @classmethod
    def parse(cls, spec: str) -> "Roi":
        parts = [s.strip() for s in str(spec).split(",")]
        try:
            if len(parts) == 1:
                f = float(parts[0])
                if not 0 < f <= 1:
                    raise ValueError
                return cls(fraction=f)
            if len(parts) == 4:
                x, y, w, h = (int(p) for p in parts)
                if x < 0 or y < 0 or w <= 0 or h <= 0:
                    raise ValueError
                return cls(box=(x, y, w, h))
        except ValueError:
            pass
        raise ValueError(f"--roi '{spec}': expected a centre-square fraction in (0, 1] "
                         "such as 0.6, or a pixel box X,Y,W,H such as 100,80,300,300")

    def rect(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        h, w = shape[:2]
        if self.box is not None:
            x, y, bw, bh = self.box
            x, y = min(x, w - 1), min(y, h - 1)
            return x, y, min(bw, w - x), min(bh, h - y)
        s = max(1, int(round(min(h, w) * (self.fraction or 1.0))))
        return (w - s) // 2, (h - s) // 2, s, s

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        x, y, w, h = self.rect(rgb.shape)
        return rgb[y : y + h, x : x + w]


@dataclass
class FrameResult:
    """One classified frame: the full RGB frame, the region used and the prediction."""

    index: int
    frame: np.ndarray
    rect: tuple[int, int, int, int] | None
    prediction: Prediction
    capture_ms: float


@dataclass
class LoopStats:
    """Filled in by ``run_loop`` while it runs: read failures and why the stream stopped."""

    frames: int = 0
    failed_reads: int = 0
    ended: str = "not started"
    warnings: list[str] = field(default_factory=list)


def run_loop(classifier, source: FrameSource | str | int | Path, roi: Roi | None = None,
             max_frames: int | None = None, max_failed_reads: int = MAX_FAILED_READS,
             stats: LoopStats | None = None) -> Iterator[FrameResult]:
    """Classify frames until the stream ends, ``max_frames`` is reached or the camera is lost.

    ``source`` is an open ``FrameSource``, a video file path (``str``/``Path``) or a camera
    index (``int``). A source opened here is closed here.
    """
    stats = stats if stats is not None else LoopStats()
    owned = not isinstance(source, FrameSource)
    if owned:
        source = (open_source(camera=source) if isinstance(source, int)
                  else open_source(video=source))
    failed_in_a_row = 0
    stats.ended = "running"
    try:
        while max_frames is None or stats.frames < max_frames:
            t0 = time.perf_counter()
            rgb = source.read()
            capture_ms = (time.perf_counter() - t0) * 1000
            if rgb is None:
                if source.is_file and _at_end(source, stats.frames):
                    stats.ended = "end of video"
                    return
                stats.failed_reads += 1
                failed_in_a_row += 1
                if failed_in_a_row >= max_failed_reads:
                    stats.ended = "stream lost"
                    stats.warnings.append(_lost_message(source, stats, failed_in_a_row))
                    return
                if not source.is_file:
                    time.sleep(0.01)
                continue
            failed_in_a_row = 0
            rect = roi.rect(rgb.shape) if roi else None
            region = rgb[rect[1] : rect[1] + rect[3], rect[0] : rect[0] + rect[2]] if rect else rgb
            pred = classifier.predict_rgb(region, f"{source.name}#{stats.frames}")
            stats.frames += 1
            yield FrameResult(stats.frames - 1, rgb, rect, pred, capture_ms)
        stats.ended = "frame limit reached"
    finally:
        if stats.ended == "running":
            stats.ended = "stopped"
        if owned:
            source.close()


def _at_end(source: FrameSource, frames: int) -> bool:
    """A video file's failed read is its end unless it announced more frames than we read."""
    return source.expected_frames is None or frames >= source.expected_frames


def _lost_message(source: FrameSource, stats: LoopStats, n: int) -> str:
    if source.is_file:
        return (f"{source.name}: video ended early after {stats.frames} of "
                f"{source.expected_frames} frames ({n} unreadable; truncated or corrupt file)")
    return (f"{source.name}: no frame in {n} attempts, stopping after {stats.frames} frames "
            "(camera unplugged or stalled)")


class Recorder:
    """Annotated frames -> a video file (``.avi``: MJPG, else mp4v), renamed into place at the end.

    Frames go to a hidden ``.NAME.part.EXT`` beside the target; ``finish`` renames it, so an
    interrupted or failed run never leaves a half-written file under the final name.
    """

    def __init__(self, path: Path, fps: float | None):
        self.path, self.fps, self.frames = Path(path), fps or 15.0, 0
        self._tmp = self.path.with_name(f".{self.path.name}.part{self.path.suffix}")
        self._w: cv2.VideoWriter | None = None
        if not self.path.parent.is_dir() or not os.access(self.path.parent, os.W_OK):
            raise CameraError(f"{self.path}: cannot record here (folder missing or not writable)")

    def write(self, bgr: np.ndarray) -> None:
        if self._w is None:
            fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self._w = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                      (bgr.shape[1], bgr.shape[0]))
            if not self._w.isOpened():
                raise CameraError(f"{self.path}: OpenCV cannot record this format (use a .mp4 "
                                  "or .avi file name)")
        self._w.write(bgr)
        self.frames += 1

    def finish(self) -> bool:
        """Close and rename into place; False (and nothing written) when no frame came."""
        if self._w is not None:
            self._w.release()
        if self.frames and self._tmp.exists():
            os.replace(self._tmp, self.path)
            return True
        self._tmp.unlink(missing_ok=True)
        return False


def run_camera(classifier, source: FrameSource, *, roi: Roi | None = None,
               display: bool = True, save: Path | None = None, max_frames: int | None = None,
               on_result: Callable[[FrameResult], None] | None = None,
               log: Callable[[str], None] = print,
               top_k: int = 1) -> tuple[Summary, list[Prediction]]:
    """Run the loop with window/printout/recording; returns the summary and every prediction.

    ``display=False`` (or no GUI) calls ``on_result`` for each frame instead of showing it.
    ESC or q in the window, closing the window, or Ctrl-C stop the loop cleanly. The
    summary's ``bad`` counts failed reads; ``extra`` holds the source, why it stopped and
    any warning (camera lost, video ended early).
    """
    if display and (reason := gui_problem()):
        log(f"note: {reason}")
        display = False
    recorder = Recorder(save, source.fps) if save else None
    stats, preds, m = LoopStats(), [], classifier.manifest
    t_start = last = time.perf_counter()
    fps: float | None = None
    try:
        for r in run_loop(classifier, source, roi, max_frames, stats=stats):
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-6)
            fps, last = (inst if fps is None else 0.9 * fps + 0.1 * inst), now
            preds.append(r.prediction)
            if display or recorder:
                img = draw_overlay(r.frame, r.prediction, fps, m.positive_label, r.rect,
                                   m.trained_on, top_k)
                if recorder:
                    recorder.write(img)
                if display and not _show(img):
                    stats.ended = "closed by the user"
                    break
            if not display and on_result:
                on_result(r)
    except KeyboardInterrupt:
        stats.ended = "interrupted (Ctrl-C)"
    finally:
        saved = recorder.finish() if recorder else False
        if display:
            _close_windows()
    if recorder and not saved:
        stats.warnings.append(f"{save}: nothing recorded (no frame was classified)")
    for w in stats.warnings:
        log(f"warning: {w}")
    summary = summarize(preds, [], time.perf_counter() - t_start, {
        "source": source.name, "failed_reads": stats.failed_reads, "ended": stats.ended,
        "warnings": stats.warnings, "roi": _roi_text(roi), "saved": str(save) if saved else None})
    summary.bad = stats.failed_reads
    return summary, preds


def _show(img: np.ndarray) -> bool:
    """Show a frame; False when the user pressed ESC/q or closed the window."""
    cv2.imshow(WINDOW, img)
    key = cv2.waitKey(1) & 0xFF
    if key in (27, ord("q"), ord("Q")):
        return False
    try:
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:
        return False


def _close_windows() -> None:
    try:
        cv2.destroyAllWindows()
    except cv2.error:
        pass


def _roi_text(roi: Roi | None) -> str | None:
    if roi is None:
        return None
    return f"centre {roi.fraction:g}" if roi.fraction else "box " + ",".join(map(str, roi.box))
