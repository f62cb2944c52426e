"""Turn command-line inputs (files, folders, globs) into a sorted list of image paths.

Folders are searched recursively for image files (``edge.images.IMAGE_SUFFIXES``, any case);
a file named explicitly is always tried, whatever its suffix, so a text file called ``.jpg``
is reported by the decoder, not silently dropped. Inputs that name nothing become
``InputProblem`` rows (one line each) and the batch goes on. Paths stay ``pathlib.Path``
objects end to end (never ``cv2.imread``), so non-ASCII names work on every OS.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("10.jpg", "2.jpg", "notes.txt"): _ = (d / n).write_bytes(b"x")
    >>> paths, problems = expand_inputs([str(d), str(d / "missing.jpg")])
    >>> [p.name for p in paths], problems[0].error
    (['2.jpg', '10.jpg'], 'file or folder not found (check the path)')
"""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from edge.images import IMAGE_SUFFIXES, is_image_file

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputProblem:
    """An input that yields no image (missing path, empty folder, pattern without matches)."""

    source: str
    error: str

    def __str__(self) -> str:
        return f"{self.source}: {self.error}"


def natural_key(path: Path) -> list:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (numbers compared as numbers)."""
    parts = re.split(r"(\d+)", str(path))
    return [(0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts]


def images_in(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), naturally sorted."""
    found = [p for p in folder.rglob("*")
             if p.is_file() and is_image_file(p)
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=natural_key)


def expand_inputs(specs: list[str]) -> tuple[list[Path], list[InputProblem]]:
    """Expand files, folders and glob patterns; return ``(image paths, problems)``.

    Order follows the command line; within a folder or pattern, natural sort order.
    A path named twice is classified once.
    """
    paths: list[Path] = []
    problems: list[InputProblem] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = images_in(p)
            if not found:
                problems.append(InputProblem(spec, "no image files in this folder (looked for "
                                             + ", ".join(IMAGE_SUFFIXES) + ")"))
            paths += found
        elif p.exists():
            paths.append(p)
        elif _GLOB_CHARS.search(spec):
            found = _glob(spec)
            if not found:
                problems.append(InputProblem(spec, "no image file matches this pattern"))
            paths += found
        else:
            problems.append(InputProblem(spec, "file or folder not found (check the path)"))
    return _dedupe(paths), problems


def _glob(pattern: str) -> list[Path]:
    out: list[Path] = []
    for m in sorted(glob.glob(pattern, recursive=True), key=lambda s: natural_key(Path(s))):
        mp = Path(m)
        if mp.is_dir():
            out += images_in(mp)
        elif mp.is_file() and is_image_file(mp):
            out.append(mp)
    return out


def _dedupe(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def spread(items: list, n: int | None) -> list:
    """At most ``n`` items spread evenly over ``items`` (first and last included), in order.

    >>> spread(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    if n == 1:
        return [items[0]]
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]
