"""A run's description of itself, ``RUN/description.json``: the one owner of its schema.

The code that trains a run knows what it is: the data and where it came from, the model, the
augmentation and training phases, how the operating threshold is chosen, what the model must
not be trusted for, and the commands that made it. It writes that here once
(``train/train.py`` at the end of a run; the shipped recipe in ``research/typed_run.py``), and
``export/card.py`` renders the model card from it without knowing run types. Measured extras
(per-source tables, shifts, ...) are ``Section``s: in the description, or one JSON file per
section in ``RUN/card/`` (``RunDir.card_dir``), read with ``read_sections``.

Every text field is Markdown: ``model``, ``augmentation`` and ``threshold`` one paragraph
each, ``data``, ``training`` and ``limits`` one bullet each (without the leading ``- ``),
``reproduce`` one shell command each. A file with a field this version does not know, or a
newer schema, is refused with one line naming the file.

Example:
    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp())
    >>> d = RunDescription(title="cat/dog classifier", model="`seed_cnn` at 64x64",
    ...                    data=["pets: 2 classes"], reproduce=["python train/train.py"],
    ...                    sections=[Section("Notes", ["A paragraph."],
    ...                                      Table(["a", "b"], [["1", "2"]]))])
    >>> d.write(run).name
    'description.json'
    >>> RunDescription.read(run) == d
    True
    >>> print(d.sections[0].markdown())
    ## Notes
    <BLANKLINE>
    A paragraph.
    <BLANKLINE>
    | a | b |
    |---|---|
    | 1 | 2 |
    <BLANKLINE>
    >>> _ = run.description_json.write_text('{"schema": 1, "title": "x", "colour": "red"}')
    >>> RunDescription.read(run)                                # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    train.description.DescriptionError: .../description.json: unknown field(s) colour ...
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from train.run import RunDir

SCHEMA_VERSION = 1


class DescriptionError(ValueError):
    """A description or section file is missing, unreadable or not of this schema."""


@dataclass
class Table:
    """A table of strings: ``columns`` and ``rows`` (each row as long as ``columns``)."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        head = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        return "\n".join(head + ["| " + " | ".join(r) + " |" for r in self.rows])


@dataclass
class Section:
    """One card section: a ``## title``, Markdown paragraphs or ``- `` bullets, then a table."""

    title: str
    text: list[str] = field(default_factory=list)
    table: Table | None = None

    def markdown(self) -> str:
        """The section as Markdown, ending with a blank line (consecutive bullets stay a list)."""
        out = [f"## {self.title}", ""]
        for i, par in enumerate(self.text):
            bullets = par.startswith("- ") and i + 1 < len(self.text) and \
                self.text[i + 1].startswith("- ")
            out += [par] if bullets else [par, ""]
        if self.table is not None:
            out += [self.table.markdown(), ""]
        return "\n".join(out)

    def write(self, path: Path) -> Path:
        """One section as a JSON file (``RUN/card/NN-name.json``), atomically."""
        return RunDir(Path(path).parent).write_json(Path(path), asdict(self))

    @classmethod
    def read(cls, path: Path) -> "Section":
        return _section(_load(Path(path)), Path(path))


@dataclass
class RunDescription:
    """What a run is, in the words of the code that trained it (see the module docstring)."""

    title: str
    model: str = ""
    data: list[str] = field(default_factory=list)
    augmentation: str = ""
    training: list[str] = field(default_factory=list)
    threshold: str = ""  # how the operating threshold is chosen (the manifest has the values)
    limits: list[str] = field(default_factory=list)
    reproduce: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    def write(self, run: RunDir | str | Path) -> Path:
        """``RUN/description.json``, atomically."""
        run = run if isinstance(run, RunDir) else RunDir(run)
        run.path.mkdir(parents=True, exist_ok=True)
        return run.write_json(run.description_json, asdict(self))

    @classmethod
    def read(cls, run: RunDir | str | Path) -> "RunDescription":
        """The run's description; ``DescriptionError`` (one line naming the file) when it is
        missing, unreadable, of a newer schema or holds a field this version does not know."""
        path = (run if isinstance(run, RunDir) else RunDir(run)).description_json
        if not path.is_file():
            raise DescriptionError(
                f"{path} not found: the run's description, written when the run is trained "
                "(train/train.py; research/describe.py --run RUN for a research/train_typed.py "
                "run); train the run again with this version, or describe it")
        d = _load(path)
        if not isinstance(d.get("schema"), int) or d["schema"] > SCHEMA_VERSION:
            raise DescriptionError(f"{path}: schema {d.get('schema')!r} is not one this version "
                                   f"reads (<= {SCHEMA_VERSION}); upgrade skinlesion")
        _known(d, cls, path)
        sections = [_section(s, path) for s in d.pop("sections", [])]
        if not d.get("title"):
            raise DescriptionError(f"{path}: no title; write the file again")
        return cls(**d, sections=sections)


def read_sections(run: RunDir) -> list[Section]:
    """The sections in ``RUN/card/*.json``, in file-name order (``[]`` without the folder)."""
    folder = run.card_dir
    return [Section.read(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _load(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DescriptionError(f"{path}: cannot read it ({e.__class__.__name__}); write it "
                               "again") from None
    if not isinstance(d, dict):
        raise DescriptionError(f"{path}: not a JSON object; write it again")
    return d


def _known(d: dict, cls: type, path: Path) -> None:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise DescriptionError(f"{path}: unknown field(s) {', '.join(unknown)} (schema "
                               f"{SCHEMA_VERSION} knows {', '.join(sorted(names))}); upgrade "
                               "skinlesion or write the file again")


def _section(d: dict, path: Path) -> Section:
    if not isinstance(d, dict) or not d.get("title"):
        raise DescriptionError(f"{path}: a section without a title; write the file again")
    _known(d, Section, path)
    table = d.get("table")
    if table is not None:
        _known(table, Table, path)
        table = Table(**table)
    return Section(**{**d, "table": table})
