"""Trained runs -> one ensemble run folder (the library behind ``train/ensemble.py``).

The result is an ordinary run folder (``train.run.RunDir``), so ``train/evaluate.py`` and
``export/convert.py`` take it as is. Members must share the validation split (same seed and
validation fraction), or the ensemble's threshold would be chosen on images some member
trained on. ``validation_predictions`` and ``rank`` score every mix of runs on that shared
validation split (``train/rank_ensembles.py``); the test split is never read.

Example:
    >>> load_member_configs([Path("runs/none")])
    Traceback (most recent call last):
    ...
    train.ensemble_runs.EnsembleError: runs/none/model.keras not found; train that run first or fix the path
"""
from __future__ import annotations

import itertools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import metrics as M
from core.atomic import atomic_path
from train.config import TrainConfig
from train.run import RunDir


class EnsembleError(ValueError):
    """A member run is missing, unreadable or incompatible; the message names it."""


def load_member_configs(runs: list[Path]) -> list[TrainConfig]:
    """Each member's config; members must share the validation split."""
    cfgs = []
    for run in runs:
        for f in (RunDir(run).model_keras, RunDir(run).config_json):
            if not f.is_file():
                raise EnsembleError(f"{f} not found; train that run first or fix the path")
        cfgs.append(RunDir(run).load_config())
    for run, c in zip(runs[1:], cfgs[1:]):
        diff = cfgs[0].split_differences(c)
        if diff:
            raise EnsembleError(
                f"{run}: {', '.join(diff)} differ from {runs[0]}, so its validation split differs; "
                "train every member with the same --split-seed (or --seed) and --val-fraction")
    return cfgs


def make_ensemble(runs: list[Path], out: Path) -> tuple[Path, int]:
    """Build, save and describe the ensemble; returns (model path, parameter count)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from train.ensembling import build_ensemble

    cfgs = load_member_configs(runs)
    members = [keras.models.load_model(RunDir(r).model_keras, compile=False) for r in runs]
    model = build_ensemble(members)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    path = run.model_keras
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    cfg = TrainConfig(data=cfgs[0].data, val_fraction=cfgs[0].val_fraction,
                      exclude_leaked=cfgs[0].exclude_leaked, seed=cfgs[0].seed,
                      split_seed=cfgs[0].val_seed, model="ensemble", image_size=int(model.input_shape[1]),
                      out=str(out), run_id=out.name, members=[str(r) for r in runs])
    cfg.save(run.config_json)
    summaries = [RunDir(r).summary() for r in runs]
    summary = {
        "run_id": cfg.run_id, "params": int(model.count_params()),
        "train_seconds": round(sum(s.get("train_seconds", 0.0) for s in summaries), 1),
        "members": [{"run": str(r), "model": c.model, "alpha": c.alpha, "image_size": c.image_size,
                     "best_val_auc": s.get("best_val_auc"), "train_seconds": s.get("train_seconds"),
                     "params": s.get("params")} for r, c, s in zip(runs, cfgs, summaries)],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__}}
    run.write_json(run.summary_json, summary)
    return path, summary["params"]


@dataclass
class Mix:
    """One candidate: its member runs and how it does on validation."""

    runs: list[str]
    params: int
    val_auc: float
    val_specificity: float  # at the operating rule's threshold
    in_band: bool = False


def validation_predictions(runs: list[Path], data: str | None = None):
    """(labels, {run: P(malignant)}) on the runs' shared validation split."""
    import keras

    from train.data import list_samples, load_arrays, resolve_data_dir, split_train_val
    from train.evaluation import predict

    cfgs = load_member_configs(runs)  # refuses runs whose validation splits differ
    data_dir = resolve_data_dir(data or cfgs[0].data or None)
    _, val = split_train_val(list_samples(data_dir, "train"), cfgs[0].val_fraction,
                             cfgs[0].val_seed)
    y, probs, params = None, {}, {}
    for run in runs:
        model = keras.models.load_model(RunDir(run).model_keras, compile=False)
        x, y_run, _ = load_arrays(val, int(model.input_shape[1]), verbose=False)
        if y is not None and not np.array_equal(y, y_run):
            raise EnsembleError(f"{run}: its validation images differ from {runs[0]}'s")
        y, probs[str(run)], params[str(run)] = y_run, predict(model, x), model.count_params()
    return y, probs, params


def rank(y: np.ndarray, probs: dict[str, np.ndarray], params: dict[str, int], band: float = 0.003,
         target: float = 0.95, confidence: float = 0.95) -> list[Mix]:
    """Every non-empty mix, best validation AUC first; ``in_band``: within ``band`` of the best.

        >>> y = np.array([0, 0, 1, 1]); p = {"a": np.array([.1, .6, .4, .9]), "b": np.array([.2, .1, .8, .7])}
        >>> [(m.runs, round(m.val_auc, 2)) for m in rank(y, p, {"a": 1, "b": 1})][:2]
        [(['b'], 1.0), (['a', 'b'], 1.0)]
    """
    mixes = []
    for k in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, k):
            p = np.mean([probs[r] for r in combo], axis=0)
            thr = M.threshold_for_sensitivity(y, p, target, confidence)
            mixes.append(Mix(list(combo), sum(params[r] for r in combo), M.roc_auc(y, p),
                             M.binary_metrics(y, p, thr)["specificity"]))
    mixes.sort(key=lambda m: (-m.val_auc, len(m.runs)))
    for m in mixes:
        m.in_band = m.val_auc >= mixes[0].val_auc - band
    return mixes
