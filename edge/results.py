"""Results of a run: console lines, a summary, and JSON/CSV files (written atomically).

Every output names the model, what it was trained on and that it is not a medical device:
the console summary, the JSON document (``trained_on``/``disclaimer`` keys) and the CSV
(``#`` comment lines before the header; read it with ``pandas.read_csv(f, comment="#")``).
A failed input is a row too (``status = "error"`` with its one-line message). An input the
guard calls ``not_a_lesion`` or the quality gate ``unusable`` is a result, not an error: its
row has that status (and the reason) and an empty label and probability.

Example:
    >>> from edge.classifier import Prediction
    >>> p = Prediction("a.jpg", "benign", 0.1, 0.1, 0.5, 2.0)
    >>> q = Prediction("cat.jpg", None, None, None, 0.5, 2.0, "not_a_lesion", "guard")
    >>> s = summarize([p, q], [Failure("b.jpg", "b.jpg: empty file (0 bytes)")], wall_s=0.01)
    >>> s.classified, s.bad, s.counts, s.statuses
    (2, 1, {'benign': 1, 'not_a_lesion': 1}, {'ok': 1, 'not_a_lesion': 1, 'unusable': 0})
    >>> prediction_line(q).split()[:2]
    ['not-a-lesion', 'guard=n/a']
    >>> r = Prediction("f.jpg", "fox", 0.71, 0.71, None, 1.0, top=(("fox", 0.71), ("cat", 0.2)))
    >>> prediction_line(r, "", top_k=2).split()[:5]
    ['fox', 'p=0.7100', 'top:', 'fox', '0.7100;']
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edge import DISCLAIMER
from core.atomic import atomic_write_bytes
from core.digits import down, named
from edge.classifier import STATUSES, Prediction
from edge.quality import MESSAGES

CSV_FIELDS = ("source", "status", "label", "probability", "raw_probability", "threshold",
              "reason", "lesion_type", "type_probability", "guard_score", "modality", "top",
              "ms", "error")
SHOWN = {"not_a_lesion": "not-a-lesion", "unusable": "unusable"}  # console words


@dataclass(frozen=True)
class Failure:
    """An input that could not be classified; ``message`` is one line naming it and the fix."""

    source: str
    message: str


@dataclass
class RunInfo:
    """What produced the results: model, backend and the manifest's decision rule."""

    model: str
    backend: str
    threads: int | None
    input_size: tuple[int, int]
    threshold: float
    temperature: float
    positive_label: str
    labels: tuple[str, ...]
    trained_on: str
    disclaimer: str = DISCLAIMER
    modality_thresholds: dict[str, float] = field(default_factory=dict)
    output: str = "sigmoid"  # the manifest's output layout
    top_k: int = 1  # labels shown per result (console, CSV, JSON, overlay)

    @classmethod
    def from_classifier(cls, clf: Any, threads: int | None = None,
                        top_k: int = 1) -> "RunInfo":
        m = clf.manifest
        return cls(str(clf.model_path), clf.backend, threads, (m.input_height, m.input_width),
                   m.threshold, m.temperature, m.positive_label, tuple(m.labels),
                   m.trained_on or "not stated in the manifest",
                   modality_thresholds=dict(m.modality_thresholds), output=m.output,
                   top_k=top_k)

    def threshold_text(self) -> str:
        """``threshold 0.42`` or, per modality, ``thresholds dermoscopic 0.31, phone 0.55``."""
        if self.modality_thresholds:
            return "thresholds " + named(self.modality_thresholds)
        return f"threshold {down(self.threshold)}"

    def rule_text(self) -> str:
        """How a label is chosen, for the summary and the CSV header."""
        if self.output == "softmax" and not self.positive_label:
            return f"the most likely of {len(self.labels)} classes ({', '.join(self.labels)})"
        if self.output == "softmax":
            return (f"{self.positive_label} when p({self.positive_label}) >= {self.threshold_text()}"
                    ", else the most likely other class")
        return f"{self.threshold_text()} on p({self.positive_label})"


def top_text(p: Prediction, k: int) -> str:
    """The ``k`` most likely labels: ``cat 0.7100; dog 0.2000``."""
    return "; ".join(f"{label} {down(prob)}" for label, prob in p.top[:k])


@dataclass
class Summary:
    """Counts and latency of a run (files or frames)."""

    classified: int  # inputs with a result (any status)
    bad: int
    counts: dict[str, int]  # benign/malignant labels of ok results, plus the other statuses
    mean_ms: float | None
    p90_ms: float | None
    wall_s: float
    per_s: float | None  # images (or frames) per second over the whole run
    extra: dict[str, Any] = field(default_factory=dict)  # camera: failed reads, end reason
    statuses: dict[str, int] = field(default_factory=dict)  # ok / not_a_lesion / unusable


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), ``None`` for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(preds: list[Prediction], failures: list[Failure], wall_s: float,
              extra: dict[str, Any] | None = None) -> Summary:
    ms = [p.ms for p in preds]
    counts: dict[str, int] = {}
    statuses = dict.fromkeys(STATUSES, 0)
    for p in preds:
        key = p.label if p.ok else p.status
        counts[key] = counts.get(key, 0) + 1
        statuses[p.status] = statuses.get(p.status, 0) + 1
    return Summary(len(preds), len(failures), counts,
                   sum(ms) / len(ms) if ms else None, percentile(ms, 90), wall_s,
                   len(preds) / wall_s if preds and wall_s > 0 else None, extra or {}, statuses)


def prediction_line(p: Prediction, positive_label: str = "malignant", top_k: int = 1) -> str:
    """``malignant  p(malignant)=0.9132  threshold=0.4200    3.1 ms  path/to/img.jpg``;
    ``not-a-lesion  guard=0.1200 ...`` or ``unusable  (image too dark) ...`` without a label;
    ``fox  p=0.7100  ...`` for a softmax without a positive class; ``top_k > 1`` adds the
    ``top_k`` most likely labels (``top: fox 0.7100; cat 0.2000``)."""
    if p.status == "unusable":
        return f"{'unusable':<10} ({MESSAGES.get(p.reason, p.reason)})  {p.ms:6.1f} ms  {p.source}"
    guard = "" if p.guard_score is None else f"  guard={down(p.guard_score, 2)}"
    if not p.ok:
        return (f"{SHOWN.get(p.status, p.status):<10} guard="
                f"{'n/a' if p.guard_score is None else down(p.guard_score)}  "
                f"{p.ms:6.1f} ms  {p.source}")
    kind = f"  type={p.lesion_type} ({down(p.type_probability, 2)})" if p.lesion_type else ""
    mod = f"  modality={p.modality}" if p.modality else ""
    top = f"  top: {top_text(p, top_k)}" if top_k > 1 and p.top else ""
    if not positive_label:  # a softmax without a positive class: no threshold
        return (f"{p.label:<10} p={down(p.probability)}{top}{guard}  {p.ms:6.1f} ms  "
                f"{p.source}")
    return (f"{p.label:<10} p({positive_label})={down(p.probability)}  "
            f"threshold={down(p.threshold)}{mod}{kind}{top}{guard}  {p.ms:6.1f} ms  {p.source}")


def summary_lines(s: Summary, info: RunInfo, unit: str = "images") -> list[str]:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items())) or "none"
    lat = (f"mean {s.mean_ms:.1f} ms, p90 {s.p90_ms:.1f} ms" if s.mean_ms is not None
           else "no latency (nothing classified)")
    lines = [f"Summary: {s.classified} {unit} classified ({counts}), {s.bad} bad; latency {lat}"
             + (f"; {s.per_s:.1f} {unit}/s" if s.per_s else "") + f" [{info.backend}]",
             f"Model: {info.model} ({info.input_size[0]}x{info.input_size[1]}, "
             f"label: {info.rule_text()})",
             f"Trained on: {info.trained_on}",
             info.disclaimer]
    if s.statuses.get("not_a_lesion") or s.statuses.get("unusable"):
        lines.insert(1, f"Not labelled: {s.statuses.get('not_a_lesion', 0)} not a lesion "
                        f"(guard), {s.statuses.get('unusable', 0)} unusable (quality gate); "
                        "--no-guard labels every input")
    return lines


def to_dict(preds: Iterable[Prediction], failures: Iterable[Failure], summary: Summary,
            info: RunInfo) -> dict[str, Any]:
    """The JSON document: run info, summary, one entry per prediction and per failure."""
    return {"disclaimer": info.disclaimer, "trained_on": info.trained_on,
            "model": asdict(info), "summary": asdict(summary),
            "predictions": [{**p.to_dict(), "top": [list(t) for t in p.top[:info.top_k]]}
                            for p in preds],
            "errors": [asdict(f) for f in failures]}


def _encode(text: str) -> bytes:
    # surrogateescape'd (undecodable) file names must not crash the writer
    return text.encode("utf-8", "backslashreplace")


def write_json(dest: str | Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``dest`` atomically, or to stdout when ``dest`` is ``"-"``."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
    if str(dest) == "-":
        sys.stdout.buffer.write(_encode(text))
        sys.stdout.flush()
    else:
        atomic_write_bytes(Path(dest), _encode(text))


def csv_text(preds: Iterable[Prediction], failures: Iterable[Failure], info: RunInfo) -> str:
    buf = io.StringIO()
    rule = (f"probability = calibrated p({info.positive_label}); label = {info.positive_label} "
            f"when probability >= threshold (the image's modality's, when the model has a "
            f"modality output: {info.threshold_text()})" if info.output == "sigmoid" else
            f"probability = p({info.positive_label or 'label'}); label = {info.rule_text()}")
    buf.write(f"# {info.disclaimer}\n# Trained on: {info.trained_on}\n"
              f"# Model: {info.model} [{info.backend}]; {rule}; top = the {info.top_k} most "
              "likely label(s) with their probabilities; status not_a_lesion (guard) or unusable "
              "(quality gate, see reason) means no label\n")
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    num = lambda v: "" if v is None else f"{v:.6f}"  # noqa: E731
    for p in preds:
        w.writerow({"source": p.source, "status": p.status, "reason": p.reason,
                    "label": p.label or "", "probability": num(p.probability),
                    "raw_probability": num(p.raw_probability), "threshold": num(p.threshold),
                    "lesion_type": p.lesion_type or "", "type_probability": num(p.type_probability),
                    "guard_score": num(p.guard_score), "modality": p.modality,
                    "top": top_text(p, info.top_k), "ms": f"{p.ms:.3f}", "error": ""})
    for f in failures:
        w.writerow({"source": f.source, "status": "error", "error": f.message})
    return buf.getvalue()


def write_csv(dest: str | Path, preds: Iterable[Prediction], failures: Iterable[Failure],
              info: RunInfo) -> None:
    """Write the CSV atomically (``"-"``: stdout)."""
    text = csv_text(preds, failures, info)
    if str(dest) == "-":
        sys.stdout.buffer.write(_encode(text))
        sys.stdout.flush()
    else:
        atomic_write_bytes(Path(dest), _encode(text))
