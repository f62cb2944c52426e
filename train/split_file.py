"""A run's own split as a file (``split.csv`` in the run folder): one row per image.

A training recipe that draws its own split over several sources writes it here, so export
(calibration, guard, per-modality thresholds) reads the exact images the run used, without
knowing how they were drawn. Columns: ``split`` (train, val, test), ``path``, ``label`` (index
into the run's labels), ``source``, ``modality``, ``dx`` ("" when unknown).

Example:
    >>> import tempfile
    >>> rows = [SplitRow("train", Path("a.jpg"), 1, "ham", "dermoscopic", "mel")]
    >>> p = write_split(Path(tempfile.mkdtemp()) / "split.csv", rows)
    >>> read_split(p)["train"][0].dx, read_split(p)["val"]
    ('mel', [])
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from core.atomic import atomic_write_text

FIELDS = ("split", "path", "label", "source", "modality", "dx")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRow:
    """One image of a run's split."""

    split: str
    path: Path
    label: int
    source: str = ""
    modality: str = ""
    dx: str = ""


def rows_of(splits: dict[str, Iterable]) -> list[SplitRow]:
    """``SplitRow``s from ``{split: items}``, items having ``path`` and ``label`` (and
    optionally ``source``, ``modality``, ``dx``)."""
    return [SplitRow(s, Path(i.path), int(i.label), getattr(i, "source", ""),
                     getattr(i, "modality", ""), getattr(i, "dx", ""))
            for s in SPLITS for i in splits.get(s, [])]


def write_split(path: Path, rows: Iterable[SplitRow]) -> Path:
    """Write ``rows`` as CSV, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for r in rows:
        w.writerow([r.split, r.path, r.label, r.source, r.modality, r.dx])
    return atomic_write_text(Path(path), buf.getvalue())


def read_split(path: Path) -> dict[str, list[SplitRow]]:
    """``{split: rows}`` for every split in ``SPLITS`` (empty lists for splits not there).

    Raises ``ValueError`` naming the file when a column is missing or a label is not a number.
    """
    out: dict[str, list[SplitRow]] = {s: [] for s in SPLITS}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                             "re-train the run to write it again")
        for n, r in enumerate(reader, start=2):
            try:
                row = SplitRow(r["split"], Path(r["path"]), int(r["label"]), r["source"],
                               r["modality"], r["dx"])
            except ValueError:
                raise ValueError(f"{path}:{n}: label {r['label']!r} is not a number") from None
            out.setdefault(row.split, []).append(row)
    return out
