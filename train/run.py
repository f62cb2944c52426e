"""The run folder: the one owner of what ``train/train.py`` hands to evaluation and export.

A run folder holds ``config.json`` (the ``TrainConfig``), ``model.keras`` (best weights),
``history.csv`` and ``curves.png`` (per-epoch curves), ``train_summary.json`` (what training
measured), ``backup/`` (resume state), and after ``train/evaluate.py`` ``metrics.json`` and
``report.md``; ``description.json`` (what the run is: ``train/description.py``) and ``card/``
(extra measured sections of its model card, one JSON section per file);
``export/convert.py`` writes ``export/`` inside it by default. Only this module spells those
names. TensorFlow-free (json and the standard library), so export, benchmarks
and tests can read a run cheaply.

Example:
    >>> import tempfile
    >>> runs = Path(tempfile.mkdtemp())
    >>> run = RunDir(runs / "demo")
    >>> run.write_json(run.summary_json, {"params": 1234}).name
    'train_summary.json'
    >>> run.summary()["params"], run.has_model()
    (1234, False)
    >>> RunDir.latest([runs]) is None              # nothing trained yet
    True
    >>> _ = run.model_keras.write_bytes(b"")       # a trained run holds a model
    >>> RunDir.latest([runs]) == run, run.has_model()
    (True, True)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunDir:
    """A training run folder and the names of the files in it."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    # The files of a run, by role.
    config_json = property(lambda self: self.path / "config.json")
    model_keras = property(lambda self: self.path / "model.keras")
    history_csv = property(lambda self: self.path / "history.csv")
    curves_png = property(lambda self: self.path / "curves.png")
    summary_json = property(lambda self: self.path / "train_summary.json")
    metrics_json = property(lambda self: self.path / "metrics.json")
    report_md = property(lambda self: self.path / "report.md")
    predictions_npz = property(lambda self: self.path / "predictions.npz")  # typed runs
    loso_json = property(lambda self: self.path / "loso.json")  # leave-one-group-out check
    confusion_json = property(lambda self: self.path / "confusion.json")  # N-class runs
    split_csv = property(lambda self: self.path / "split.csv")  # a recipe's own split
    confusion_png = property(lambda self: self.path / "confusion.png")
    best_weights = property(lambda self: self.path / "best.weights.h5")  # during training
    backup_dir = property(lambda self: self.path / "backup")
    export_dir = property(lambda self: self.path / "export")
    description_json = property(lambda self: self.path / "description.json")  # train/description.py
    card_dir = property(lambda self: self.path / "card")  # extra model-card sections (*.json)

    def has_model(self) -> bool:
        return self.model_keras.is_file()

    def is_trained(self) -> bool:
        """``model.keras`` and ``config.json`` both present (what evaluation needs)."""
        return self.has_model() and self.config_json.is_file()

    def started(self) -> bool:
        """A model or resume state is already here (a new run must not overwrite it)."""
        return self.has_model() or self.backup_dir.exists()

    def read_json(self, path: Path) -> dict[str, Any]:
        """A JSON file of this run; ``{}`` when it does not exist."""
        return json.loads(path.read_text()) if path.is_file() else {}

    def write_json(self, path: Path, data: Any) -> Path:
        """Write atomically (a crash never leaves half a file under the final name)."""
        return atomic_write_text(path, json.dumps(data, indent=2))

    def config(self) -> dict[str, Any]:
        return self.read_json(self.config_json)

    def summary(self) -> dict[str, Any]:
        return self.read_json(self.summary_json)

    def metrics(self) -> dict[str, Any]:
        return self.read_json(self.metrics_json)

    def load_config(self):
        """The run's ``TrainConfig`` (imported lazily: TrainConfig is the training side's type)."""
        from train.config import TrainConfig

        return TrainConfig.load(self.config_json)

    @classmethod
    def latest(cls, roots: Iterable[str | Path] | None = None) -> "RunDir | None":
        """The newest run holding a ``model.keras`` under ``./runs`` (then the repository's)."""
        found = [p for r in default_roots(roots) if r.is_dir()
                 for p in r.glob("*/model.keras") if p.is_file()]
        return cls(max(found, key=lambda p: p.stat().st_mtime).parent) if found else None

    @classmethod
    def latest_export(cls, roots: Iterable[str | Path] | None = None) -> Path | None:
        """The newest ``<run>/export`` holding a manifest (``export/convert.py``'s default)."""
        from edge.manifest import MANIFEST_NAME

        found = [p for r in default_roots(roots) if r.is_dir()
                 for p in r.glob(f"*/export/{MANIFEST_NAME}") if p.is_file()]
        return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def default_roots(roots: Iterable[str | Path] | None = None) -> list[Path]:
    """Where runs are looked for: ``roots`` if given, else ``./runs`` and ``<repo>/runs``."""
    return [Path(r) for r in roots] if roots is not None else [Path("runs"), ROOT / "runs"]


@dataclass
class RunRecord:
    """What a finished run tells export: its config and metrics (empty if absent) and warnings."""

    run: RunDir
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    border_override: str = ""

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def run_id(self) -> str:
        return str(self.config.get("run_id") or self.run.path.name)

    @property
    def color_constancy(self) -> str:
        return str(self.config.get("color_constancy") or "none")

    @property
    def border(self) -> str:
        """The export's border correction (``convert.py --border``; default: the run's)."""
        return self.border_override or str(self.config.get("border") or "none")

    @property
    def sources(self) -> list[str] | None:
        """The run's source folders (first = primary) when it trained on several."""
        return list(self.config["data_sources"]) if self.config.get("data_sources") else None
