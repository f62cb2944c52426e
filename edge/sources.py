"""Frame sources for the camera loop: USB camera or video file (OpenCV), Pi camera (Picamera2).

Every source returns RGB uint8 frames, converted once here: OpenCV delivers B,G,R, and
Picamera2's ``"RGB888"`` format is also B,G,R in memory (libcamera names formats by
little-endian word order). A failed read returns ``None``; the loop decides how many to
tolerate. Opening a source that is not there raises ``CameraError`` with one line that
names the source and the fix.

Example:
    >>> src = open_source(video="lesions.mp4")          # doctest: +SKIP
    >>> rgb = src.read(); src.close()                    # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core import first_line


class CameraError(RuntimeError):
    """A camera or video cannot be opened (or recorded to); one line naming it and the fix."""


class FrameSource:
    """Base class: ``read() -> RGB frame or None``, ``close()``; ``name`` labels results."""

    name = "source"
    is_file = False
    expected_frames: int | None = None  # frame count announced by a video file
    fps: float | None = None

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """The one colour conversion for camera frames (B,G,R[,A] or grey -> RGB)."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` on a video file (``Path``) or a device index, path or URL."""

    def __init__(self, target: int | str | Path, width: int | None = None,
                 height: int | None = None):
        self.is_file = isinstance(target, Path)
        if self.is_file:
            path = Path(target)
            if not path.is_file():
                raise CameraError(f"{path}: video file not found (check the path)")
            if path.stat().st_size == 0:
                raise CameraError(f"{path}: video file is empty (0 bytes)")
            self.name = str(path)
            self._cap = cv2.VideoCapture(str(path))
            if not self._cap.isOpened():
                raise CameraError(f"{path}: OpenCV cannot open this video (corrupt, truncated "
                                  "or an unsupported codec; try an .mp4 (mp4v) or .avi (MJPG))")
            n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.expected_frames = n if n > 0 else None
        else:
            self.name = f"camera{target}" if isinstance(target, int) else str(target)
            self._cap = cv2.VideoCapture(target)
            if not self._cap.isOpened():
                raise CameraError(
                    f"camera {target}: cannot open it (is it plugged in? `ls /dev/video*` lists "
                    "cameras; add yourself to the 'video' group; close other programs using it; "
                    "a Raspberry Pi camera module needs --camera picamera2)")
            if width:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None

    def read(self) -> np.ndarray | None:
        try:
            ok, frame = self._cap.read()
        except cv2.error:
            return None
        if not ok or frame is None or frame.size == 0:
            return None
        return _bgr_to_rgb(frame)

    def close(self) -> None:
        self._cap.release()


class Picamera2Source(FrameSource):
    """The Raspberry Pi CSI camera through Picamera2 (libcamera), as on Raspberry Pi OS."""

    name = "picamera2"

    def __init__(self, width: int | None = None, height: int | None = None):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(
                "picamera2: not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
                "and create the venv with python3 -m venv --system-site-packages)") from None
        try:
            if not Picamera2.global_camera_info():
                raise CameraError("picamera2: no camera module detected (check the ribbon cable "
                                  "and run rpicam-hello --list-cameras)")
            self._cam = Picamera2()
            size = (int(width or 640), int(height or 480))
            config = self._cam.create_video_configuration(main={"size": size,
                                                                "format": "RGB888"})
            self._cam.configure(config)
            self._cam.start()
        except CameraError:
            raise
        except Exception as e:  # libcamera raises many types; one line is enough
            raise CameraError(f"picamera2: cannot start the camera ({first_line(e)}; "
                              "is another program using it?)") from e

    def read(self) -> np.ndarray | None:
        try:
            frame = self._cam.capture_array("main")
        except Exception:
            return None
        return _bgr_to_rgb(np.ascontiguousarray(frame)) if frame is not None else None

    def close(self) -> None:
        try:
            self._cam.stop()
            self._cam.close()
        except Exception:
            pass


def picamera2_available() -> bool:
    """True when Picamera2 is importable and reports at least one camera."""
    try:
        from picamera2 import Picamera2

        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


def open_source(camera: str | int | None = None, video: str | Path | None = None,
                width: int | None = None, height: int | None = None) -> FrameSource:
    """Open ``video`` (a file) or ``camera``: an index, ``"picamera2"``, ``"auto"``, a path or URL.

    ``"auto"`` picks the Pi camera module when Picamera2 sees one, else OpenCV camera 0.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if video is not None:
        return OpenCVSource(Path(video))
    if camera in (None, "auto"):
        if picamera2_available():
            return Picamera2Source(width, height)
        return OpenCVSource(0, width, height)
    if camera == "picamera2":
        return Picamera2Source(width, height)
    if isinstance(camera, int) or str(camera).isdigit():
        return OpenCVSource(int(camera), width, height)
    return OpenCVSource(str(camera), width, height)  # /dev/videoN, rtsp://...
