"""Simulated dermoscope shifts and an exported file's metrics under them (``research/shift_eval.py``).

Each shift is a fixed function of a uint8 RGB image sized to the model input: white balance,
exposure, a dermoscope ring, blur, JPEG quality, the other source's framing.

    >>> img = np.full((8, 8, 3), 100, np.uint8)
    >>> [int(SHIFTS[s](img)[0, 0, 0]) for s in ("none", "warm", "darker")]
    [100, 115, 75]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from core.digits import down


def _gain(r: float, g: float, b: float) -> Callable[[np.ndarray], np.ndarray]:
    k = np.array([r, g, b], np.float32)
    return lambda x: np.clip(x.astype(np.float32) * k, 0, 255).astype(np.uint8)


def ring_shift(x: np.ndarray, radius: float = 0.9, soft: float = 0.08) -> np.ndarray:
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    return (x * np.clip((radius - d) / soft, 0, 1)[..., None]).astype(np.uint8)


def _jpeg(x: np.ndarray, quality: int = 30) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _squeeze(x: np.ndarray) -> np.ndarray:
    """A 4:3 frame squeezed to a square, from a square: the centre 3/4 of the width stretched
    back (what the Kaggle set's framing does to a HAM10000-like centre square)."""
    h, w = x.shape[:2]
    cw = round(w * 0.75)
    x0 = (w - cw) // 2
    return cv2.resize(x[:, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "warm": _gain(1.15, 1.0, 0.85),      # white balance towards red
    "cool": _gain(0.85, 1.0, 1.15),      # towards blue
    "darker": _gain(0.75, 0.75, 0.75),   # exposure -0.4 EV
    "brighter": _gain(1.25, 1.25, 1.25),
    "ring": ring_shift,                       # a dermoscope's dark circle at the corners
    "blur": lambda x: cv2.GaussianBlur(x, (0, 0), 1.5),
    "jpeg30": _jpeg,
    "squeeze": _squeeze,
}


@dataclass
class ShiftRow:
    shift: str
    source: str
    n: int
    roc_auc: float | None
    sensitivity: float | None
    specificity: float | None


def shift_report(model: Path, sources: list[str] | None, shifts: list[str],
                 val_fraction: float = 0.15, seed: int = 0,
                 fix: Callable[[np.ndarray], np.ndarray] | None = None) -> list[ShiftRow]:
    """``model`` on the validation images of ``sources`` under each of ``shifts`` (then ``fix``,
    a candidate input correction such as ``fill_dark_border``, when given)."""
    from edge.classifier import Classifier
    from train.data import Sample, load_arrays, readable
    from research.source_eval import per_source
    from research.multisource import gather

    clf = Classifier(model)
    m = clf.manifest
    items = gather(sources, val_fraction, seed)["val"]
    samples = [Sample(i.path, i.label) for i in items]
    x, _, bad = load_arrays(samples, m.input_height, verbose=False)
    keep = {str(s.path) for s in readable(samples, bad)}
    items = [i for i in items if str(i.path) in keep]
    y = np.array([i.label for i in items])
    rows, fix = [], fix or (lambda im: im)
    for name in shifts:
        vecs = [clf.raw_outputs(clf.prepare(fix(SHIFTS[name](img)))) for img in x]
        p = np.array([m.calibrate(v[0]) for v in vecs])
        thr = np.array([m.threshold_for(m.modality_of(v)) for v in vecs])  # as the runner does
        for src, r in per_source(y, p, [i.source for i in items], thr).items():
            rows.append(ShiftRow(name, src, r["n"], r.get("roc_auc"), r.get("sensitivity"),
                                 r.get("specificity")))
    return rows


def table(rows: list[ShiftRow]) -> str:
    """Markdown: one row per shift and source, with the change from the unshifted row."""
    base = {r.source: r for r in rows if r.shift == "none"}

    def cell(v, b) -> str:
        if v is None:
            return "-"
        return down(v) if b is None or v is b else f"{down(v)} ({down(v - b, sign=True)})"

    out = ["| shift | source | n | ROC AUC | sensitivity | specificity |", "|---|---|---|---|---|---|"]
    for r in rows:
        b = base.get(r.source)
        out.append(f"| {r.shift} | {r.source} | {r.n} | "
                   + " | ".join(cell(getattr(r, k), getattr(b, k) if b and r is not b else None)
                                for k in ("roc_auc", "sensitivity", "specificity")) + " |")
    return "\n".join(out)
