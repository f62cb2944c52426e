"""On-screen overlay and GUI detection for the camera loop.

The overlay shows the label, the probability and threshold (or, without a label, "no lesion
in view" when the guard rejects the region, or "unusable: <reason>" from the quality gate),
FPS, the region that was classified, the not-a-medical-device note and what the model was
trained on. ``gui_problem`` says (in one line) why no window can be opened: an OpenCV build without GUI support
(``opencv-python-headless``) or no display; the runner then continues headless.

Example:
    >>> import numpy as np
    >>> from edge.classifier import Prediction
    >>> p = Prediction("camera0#1", "benign", 0.12, 0.12, 0.5, 3.0)
    >>> draw_overlay(np.zeros((240, 320, 3), np.uint8), p, 14.8, "malignant").shape
    (240, 320, 3)
    >>> headline(Prediction("cam#2", None, None, None, 0.5, 3.0, "not_a_lesion", "guard"))
    'no lesion in view'
"""
from __future__ import annotations

import os
import re
import sys

import cv2
import numpy as np

from core.digits import down
from edge.classifier import Prediction
from edge.quality import MESSAGES

NOTE = "NOT a medical device - research/education only"  # edge.DISCLAIMER, short
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_RED, _GREEN, _WHITE, _YELLOW = (0, 0, 255), (0, 200, 0), (255, 255, 255), (0, 255, 255)


def gui_problem() -> str | None:
    """``None`` when a window can probably be opened, else a one-line reason and the fix."""
    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if m and m.group(1).upper() == "NONE":
        return ("this OpenCV build has no GUI support (opencv-python-headless): continuing "
                "headless; for a window pip install opencv-python (on the Pi: apt install "
                "python3-opencv and a --system-site-packages venv)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display (DISPLAY and WAYLAND_DISPLAY are not set): continuing headless; "
                "run it on the desktop, or use ssh -X")
    return None


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour,
          thickness: int = 1) -> None:
    """Text on a dark box, readable on any background."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = org
    cv2.rectangle(img, (x - 3, y - th - 3), (x + tw + 3, y + base + 1), (0, 0, 0), -1)
    cv2.putText(img, text, org, _FONT, scale, colour, thickness, cv2.LINE_AA)


def _wrap(text: str, scale: float, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        cand = f"{cur} {w}".strip()
        if cur and cv2.getTextSize(cand, _FONT, scale, 1)[0][0] > width:
            lines.append(cur)
            cur = w
        else:
            cur = cand
    return lines + ([cur] if cur else [])


def headline(pred: Prediction, positive_label: str = "malignant") -> str:
    """The overlay's main line: the label, or why there is none."""
    if pred.status == "not_a_lesion":
        return "no lesion in view"
    if pred.status == "unusable":
        return f"unusable: {MESSAGES.get(pred.reason, pred.reason)}"
    if not positive_label:  # a softmax without a positive class
        return f"{pred.label}  p={down(pred.probability, 2)}"
    kind = f"  {pred.lesion_type}" if pred.lesion_type else ""
    mod = f" {pred.modality}" if pred.modality else ""
    return (f"{pred.label}  p({positive_label})={down(pred.probability, 2)} "
            f"(thr{mod} {down(pred.threshold, 2)}){kind}")


def draw_overlay(rgb: np.ndarray, pred: Prediction, fps: float | None,
                 positive_label: str = "malignant", rect: tuple[int, int, int, int] | None = None,
                 trained_on: str = "", top_k: int = 1) -> np.ndarray:
    """A BGR copy of ``rgb`` (for ``cv2.imshow``/``VideoWriter``) with the result drawn on it
    (``top_k > 1``: the most likely labels under the headline)."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    scale = max(0.35, min(1.0, w / 900))
    line = int(32 * scale) + 4
    if rect is not None:
        x, y, rw, rh = rect
        cv2.rectangle(img, (x, y), (x + rw - 1, y + rh - 1), _YELLOW, max(1, int(2 * scale)))
    colour = (_WHITE if not pred.ok else _RED if pred.label == positive_label else _GREEN)
    _text(img, headline(pred, positive_label), (8, line), scale, colour, max(1, int(2 * scale)))
    _text(img, f"{fps:.1f} FPS  {pred.ms:.0f} ms" if fps else f"{pred.ms:.0f} ms",
          (8, 2 * line), scale * 0.8, _WHITE)
    for i, (label, p) in enumerate(pred.top[:top_k] if top_k > 1 and pred.ok else ()):
        _text(img, f"{i + 1}. {label} {down(p, 2)}", (8, (3 + i) * line), scale * 0.8, _WHITE)
    small = scale * 0.6
    foot = [NOTE] + _wrap(f"Trained on: {trained_on}", small, w - 16) if trained_on else [NOTE]
    step = int(22 * small) + 4
    for i, text in enumerate(reversed(foot)):
        _text(img, text, (8, h - 8 - i * step), small, _YELLOW if text == NOTE else _WHITE)
    return img
