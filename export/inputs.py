"""What the export CLI gathers before exporting: the run folder, its metrics, and images.

- ``find_latest_model``: the newest run's model (``RunDir.latest``; the CLI's default ``--model``).
- ``read_run``: the config and metrics of a training run (``train.run.RunDir``; threshold,
  temperature and test metrics come from ``train/evaluate.py``); missing files become warnings.
- ``manifest_from_run``: the manifest those fill in.
- ``operating_rule``: the run's validation images and threshold rule, so each artifact gets
  its own threshold (``export/threshold.py``).
- ``load_calibration`` / ``load_test``: uint8 images through ``train.data.load_arrays`` (the
  same ``edge.preprocess.fit_to_input`` path the edge runner uses).

Example:
    >>> info = read_run(Path("runs/demo"))                   # doctest: +SKIP
    >>> manifest_from_run(info).threshold                    # doctest: +SKIP
    0.37
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from edge.manifest import Manifest, trained_on
from export.context import ExportError
from train.run import RunDir, RunRecord, default_roots


def find_latest_model(roots: tuple[Path, ...] | None = None) -> Path:
    """The newest run's model under ``./runs`` (then the repository's ``runs``)."""
    run = RunDir.latest(roots)
    if run is None:
        where = " or ".join(str(RunDir(Path(r) / "*").model_keras) for r in default_roots(roots))
        raise ExportError(f"no trained model found ({where}); "
                          "train one with python train/train.py --out runs/<id>, or pass --model")
    return run.model_keras


def _read_json(path: Path, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: unreadable or not JSON ({e}); {fix}") from e
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object; {fix}")
    return data


def read_run(run_dir: Path) -> RunRecord:
    """Read a run folder; missing metrics mean threshold 0.5 and temperature 1.0."""
    info = RunRecord(RunDir(run_dir))
    cfg, met = info.run.config_json, info.run.metrics_json
    if cfg.is_file():
        info.config = _read_json(cfg, "re-run python train/train.py")
    else:
        info.warnings.append(f"warning: {cfg} not found; run id taken from the folder name")
    if met.is_file():
        info.metrics = _read_json(met, f"re-run python train/evaluate.py --run {info.run_dir}")
        multiclass = info.metrics.get("task") == "multiclass"  # no threshold without --positive
        for key in ("temperature",) if multiclass else ("threshold", "temperature"):
            if not isinstance(info.metrics.get(key), (int, float)):
                raise ExportError(f"{met}: no numeric '{key}'; re-run python train/evaluate.py "
                                  f"--run {info.run_dir}")
    else:
        info.warnings.append(
            f"warning: {met} not found: shipping threshold 0.5 and temperature 1.0 with no test "
            f"metrics; run python train/evaluate.py --run {info.run_dir} first")
    return info


def _scalars(d: Any) -> dict[str, Any]:
    """The finite scalar fields of ``d`` (a manifest is read by browsers: no NaN in JSON)."""
    ok = lambda v: isinstance(v, (int, str, bool)) or (  # noqa: E731
        isinstance(v, float) and math.isfinite(v))
    return {k: v for k, v in d.items() if ok(v)} if isinstance(d, dict) else {}


def manifest_from_run(info: RunRecord) -> Manifest:
    """Manifest fields known before export: threshold, temperature, run id, test metrics."""
    m, met = Manifest(), info.metrics
    m.run_id = info.run_id
    m.model_name = str(info.config.get("model", ""))
    m.color_constancy, m.border = info.color_constancy, info.border
    if info.config.get("classes"):
        m.classes = tuple(info.config["classes"])
        m.class_names = dict(info.config.get("class_names", {}))
        m.malignant_classes = tuple(info.config.get("malignant_classes", ()))
    cfg_labels = info.config.get("labels") or []
    if cfg_labels:  # a run of train/train.py on any class folders
        m.labels = tuple(cfg_labels)
        positive = info.config.get("positive") or ""
        m.output = "sigmoid" if len(cfg_labels) == 2 and positive else "softmax"
        m.positive_index = m.labels.index(positive) if positive else -1
    if info.sources:
        m.trained_on = trained_on(info.sources)
    else:
        m.trained_on = str(info.config.get("trained_on") or _described(info))
    if info.config.get("modalities") and info.config.get("modality_index") is not None:
        m.modalities = tuple(info.config["modalities"])
        m.modality_index = int(info.config["modality_index"])
    if met and m.output == "softmax":  # train/evaluate.py's N-class metrics
        m.threshold = float(met.get("threshold") or 0.5)
        m.threshold_rule = str(met.get("threshold_rule", ""))
        m.metrics = {k: _scalars(met[k]) for k in ("test",) if k in met}
    elif met:
        m.threshold = float(met["threshold"])
        m.temperature = float(met["temperature"])
        m.threshold_rule = str(met.get("threshold_rule", ""))
        if m.modality_index >= 0 and met.get("modality_thresholds"):
            m.modality_thresholds = {k: float(v) for k, v in met["modality_thresholds"].items()}
            m.modality_threshold_rules = dict(met.get("modality_threshold_rules", {}))
        m.metrics = {k: _scalars(met[k]) for k in ("test", "test_full") if k in met}
        m.metrics.update({k: met[k] for k in ("n_test", "n_test_full") if k in met})
    return m


def _described(info: RunRecord) -> str:
    """``trained_on`` for a run that did not record it: from its data folder, if still there."""
    from train.data import DatasetError, class_names, provenance

    data = info.config.get("data")
    try:
        return provenance(data, class_names(data)) if data and Path(data).is_dir() else ""
    except DatasetError:
        return ""


def operating_rule(info: RunRecord, data_dir: Path, image_size: int):
    """The run's validation split (as ``train/evaluate.py`` drew it) and threshold rule.

    ``None`` when the run has no config or metrics (no rule to repeat) or the
    validation images are missing; the artifacts then share the manifest's threshold.
    """
    from export.threshold import OperatingRule
    from train.data import Sample, list_samples, load_arrays, readable, split_train_val

    met = info.metrics
    if not info.config or "threshold" not in met:
        return None
    cfg = info.run.load_config()
    modalities = None
    if info.sources:
        items = _source_items(info)["val"]
        val = [Sample(i.path, i.label) for i in items]
        mod_of = {str(i.path): i.modality for i in items}
    else:
        _, val = split_train_val(list_samples(data_dir, "train", classes=tuple(cfg.labels) or None),
                                 cfg.val_fraction, cfg.val_seed)
    x, y, bad = load_arrays(val, image_size, verbose=False, color_constancy=info.color_constancy,
                            border=info.border)
    if len(y) == 0 or len(set(y.tolist())) < 2:
        return None
    if info.sources and met.get("modality_thresholds"):
        modalities = [mod_of[str(s.path)] for s in readable(val, bad)]
    # metrics.json from before the lower-bound rule has no "threshold_confidence": point rule
    return OperatingRule(x, y, float(met.get("target_sensitivity", 0.95)),
                         float(met.get("threshold_confidence", 0.0)), modalities,
                         dict(met.get("modality_targets", {})),
                         _primary_modality(info) if modalities else "")


def _source_items(info: RunRecord) -> dict:
    """The several-source run's own split, as its recipe wrote it (``split.csv``)."""
    from train.split_file import read_split

    path = info.run.split_csv
    if not path.is_file():
        raise ExportError(f"{path} not found: this run trained on several sources "
                          f"({', '.join(info.sources or [])}) but did not record its split; "
                          "train it again with the current recipe (make train-shipped)")
    try:
        return read_split(path)
    except (OSError, ValueError) as e:
        raise ExportError(str(e)) from e


def _primary_modality(info: RunRecord) -> str:
    """The modality of the primary source's test images (whose threshold is the one
    ``threshold``, for runners without a modality output)."""
    test = _source_items(info)["test"]
    return test[0].modality if test else ""


def source_split(info: RunRecord) -> dict[str, tuple[list, list]]:
    """``{source: (train Samples, val Samples)}`` of a several-source run's own split."""
    from train.data import Sample

    g, out = _source_items(info), {}
    for name in dict.fromkeys(i.source for i in g["train"] + g["val"]):
        out[name] = tuple([Sample(i.path, i.label) for i in g[s] if i.source == name]
                          for s in ("train", "val"))
    return out


def _source_samples(info: RunRecord, split: str) -> list:
    """``train.data.Sample``s of one split over every source of a several-source run."""
    from train.data import Sample

    return [Sample(i.path, i.label) for i in _source_items(info)[split]]


def load_calibration(data_dir: Path, image_size: int, count: int, seed: int = 0,
                     info: RunRecord | None = None,
                     classes: tuple[str, ...] | None = None) -> np.ndarray:
    """Up to ``count`` training images (a seeded random draw) as uint8 ``[N, S, S, 3]``.

    With ``info`` of a several-source run, drawn from every source's training split and
    prepared with the run's colour constancy; with ``info``, its border correction too.
    ``classes``: the manifest's labels (the folders to read; default: every class folder).
    """
    from train.data import list_samples, load_arrays

    samples = _source_samples(info, "train") if info and info.sources else \
        list_samples(data_dir, "train", classes=classes)
    random.Random(seed).shuffle(samples)
    cc, border = (info.color_constancy, info.border) if info else ("none", "none")
    x, _, _ = load_arrays(samples[:count], image_size, color_constancy=cc, border=border)
    return x


def load_test(data_dir: Path, image_size: int, exclude_leaked: bool = True,
              color_constancy: str = "none", border: str = "none",
              classes: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split (without the known train/test duplicates) as uint8 images and labels
    (indices into ``classes``, the manifest's labels)."""
    from train.data import list_samples, load_arrays

    x, y, _ = load_arrays(list_samples(data_dir, "test", exclude_leaked, classes=classes),
                          image_size,
                          color_constancy=color_constancy, border=border)
    return x, y
