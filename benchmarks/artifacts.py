"""What to benchmark: the artifacts of an export folder, their accuracy, the Keras source, images.

An export folder (``export/convert.py --out DIR``) holds ``manifest.json`` naming every
artifact by format, the files themselves and ``export_report.json`` with per-format parity
rows (sha256, accuracy, AUC on the test images). Accuracy is joined by the artifact's
sha256, so a file changed after export never inherits an old score.

Example:
    >>> arts = find_artifacts(Path("models"))                         # the shipped model
    >>> [(a.format, a.path.name) for a in arts][:1]
    [('tflite_int8', 'model_int8.tflite')]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import sha256_file
from edge.manifest import MANIFEST_NAME, Manifest, ManifestError
from edge.modelpath import ModelNotFound, choose_model
from export.formats import FORMATS, format_for_file
from train.run import RunDir

ROOT = Path(__file__).resolve().parents[1]
EXPORT_REPORT = "export_report.json"


class InputError(ValueError):
    """Bad benchmark input (folder, flag); the message is one line naming the fix."""


@dataclass
class Artifact:
    """One file to time. ``role`` is ``model`` (yours) or ``reference`` (MobileNetV2 yardstick)."""

    format: str
    path: Path
    model: str
    role: str = "model"
    sha256: str = ""
    bytes: int = 0
    error: str = ""  # set when the file cannot be benchmarked at all

    @property
    def family(self) -> str:
        return "onnx" if self.path.suffix.lower() == ".onnx" else "tflite"


def default_artifacts_dir(runs: list[Path] | None = None) -> Path:
    """The newest run's export folder (``RunDir.latest_export``), else the default model's folder.

    The default model is the edge runner's (``edge.modelpath.choose_model``: $SKINLESION_MODEL,
    ./models, the packaged model), so an installed copy benchmarks the packaged model from any
    folder. With none of them, ``models/`` of the source tree (``find_artifacts`` then says so).
    ``runs``: the folders runs are looked for in (default: ./runs and <repo>/runs).
    """
    latest = RunDir.latest_export(runs)
    if latest is not None:
        return latest
    try:
        return choose_model().path.parent
    except ModelNotFound:
        return ROOT / "models"


def load_manifest(folder: Path) -> Manifest | None:
    p = folder / MANIFEST_NAME
    return Manifest.load(p) if p.is_file() else None


def find_artifacts(folder: Path, formats: list[str] | None = None) -> list[Artifact]:
    """Artifacts named by ``folder/manifest.json`` (else the registry's file names found there).

    A listed file that is missing or empty comes back with ``error`` set (an error row).
    Raises ``InputError`` when the folder holds nothing to benchmark.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: artifacts folder not found (export a model with "
                         "python export/convert.py, or pass --artifacts DIR)")
    try:
        manifest = load_manifest(folder)
    except ManifestError as e:
        raise InputError(f"{e} (re-run python export/convert.py)") from e
    if manifest is not None and manifest.artifacts:
        named = {name: folder / Path(a.file).name for name, a in manifest.artifacts.items()}
        model = manifest.model_name or folder.parent.name
    else:
        named = {f.name: folder / f.filename for f in FORMATS.values()
                 if (folder / f.filename).is_file()}
        for p in sorted(folder.glob("*.tflite")) + sorted(folder.glob("*.onnx")):
            if format_for_file(p) is None:
                named[p.stem] = p
        model = folder.parent.name if folder.name == "export" else folder.name
    if formats:
        unknown = [f for f in formats if f not in named]
        if unknown:
            raise InputError(f"{folder}: format(s) {', '.join(unknown)} not in this export "
                             f"(it has {', '.join(named) or 'none'}); fix --formats")
        named = {k: v for k, v in named.items() if k in formats}
    if not named:
        raise InputError(f"{folder}: no .tflite or .onnx artifacts (export a model with "
                         "python export/convert.py --out DIR, then pass --artifacts DIR)")
    order = {name: i for i, name in enumerate(FORMATS)}  # registry order, then the rest
    out = []
    for name, path in sorted(named.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])):
        art = Artifact(name, path, model)
        if not path.is_file():
            art.error = f"{path}: listed in {MANIFEST_NAME} but missing (re-run the export)"
        else:
            art.bytes, art.sha256 = path.stat().st_size, sha256_file(path)
            if art.bytes == 0:
                art.error = f"{path}: empty file (re-run the export)"
        out.append(art)
    return out


def accuracy_index(folder: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``({sha256: {"accuracy", "auc", "n"}}, report-level info)`` from ``export_report.json``.

    Missing or unreadable reports give empty results (the column then shows "-").
    """
    p = Path(folder) / EXPORT_REPORT
    try:
        rep = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}, {}
    index = {}
    for row in rep.get("rows") or []:
        parity = row.get("parity") or {}
        if row.get("sha256") and parity.get("accuracy") is not None:
            index[row["sha256"]] = {"accuracy": parity.get("accuracy"),
                                    "auc": parity.get("roc_auc"), "n": parity.get("n")}
    info = {"keras_accuracy": rep.get("keras_accuracy"), "n_test": rep.get("n_test"),
            "source": str(p)}
    return index, info


def default_keras_model(folder: Path) -> Path | None:
    """The run's Keras model beside an export folder ``<run>/export``, if present."""
    p = RunDir(Path(folder).resolve().parent).model_keras
    return p if p.is_file() else None


def pick_images(folder: Path | None, count: int) -> tuple[list[Path], str]:
    """Up to ``count`` image files, evenly spread over ``folder`` (or the dataset's test split).

    Returns ``(paths, where)``; ``where`` explains the source or why there are none.
    """
    from edge.images import is_image_file

    if folder is None:
        try:
            from train.data import list_samples, resolve_data_dir

            root = resolve_data_dir(None)
            files = [s.path for s in list_samples(root, "test")]
            where = f"{root}/test (leak-free test split)"
        except Exception as e:  # no dataset here (or no train package on a device)
            return [], f"no images for end-to-end timing ({first_line(e, 120)}...); " \
                       "pass --images DIR"
    else:
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: --images folder not found")
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
        where = str(folder)
    if not files:
        return [], f"{where}: no image files for end-to-end timing"
    step = max(1, len(files) // max(count, 1))
    return files[::step][:count], where
