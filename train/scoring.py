"""Scoring a binary run (``train/evaluate.py``): predictions, calibration, threshold, CIs.

The threshold and temperature are fitted on the validation split (the same seeded,
lesion-aware split as training) and applied once to the test split. The headline test
split excludes the 27 images that leak from train; the full 660-image split is reported beside.

Example:
    >>> ev = evaluate_run("runs/demo")        # doctest: +SKIP
    >>> ev.metrics["test"]["roc_auc"]         # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import metrics as M
from core.digits import down
from train.data import (CLASSES, list_samples, load_arrays, readable, resolve_data_dir,
                        split_train_val)
from train.run import RunDir


@dataclass
class SplitPredictions:
    x: np.ndarray  # uint8 images as the model saw them
    y: np.ndarray
    p: np.ndarray  # raw model probability of malignant
    files: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    run_dir: Path
    metrics: dict
    val: SplitPredictions
    test: SplitPredictions


def predict(model, x: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
    """P(malignant) for uint8 images; ``tta`` averages the 4 flips."""
    views = [x] if not tta else [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    ps = [model.predict(v.astype("float32"), batch_size=batch_size, verbose=0).reshape(-1)
          for v in views]
    return np.mean(ps, axis=0)


def _split(model, samples, size, tta) -> SplitPredictions:
    x, y, bad = load_arrays(samples, size)
    good = [str(s.path) for s in readable(samples, bad)]
    return SplitPredictions(x, y, predict(model, x, tta=tta), good)


def _with_ci(y, p, threshold, n_boot, seed) -> dict:
    m = M.binary_metrics(y, p, threshold)
    m["ci95"] = M.bootstrap_ci(y, p, threshold, n_boot, seed)
    return m


def evaluate_run(run_dir: str | Path, data: str | None = None, target_sensitivity: float = 0.95,
                 n_boot: int = 1000, tta: bool = False, model=None,
                 threshold_confidence: float = 0.95) -> Evaluation:
    import keras

    run = RunDir(run_dir)
    cfg = run.load_config()
    data_dir = resolve_data_dir(data or cfg.data or None)
    model = model or keras.models.load_model(run.model_keras, compile=False)
    size = int(model.input_shape[1])

    classes = tuple(cfg.labels) or None  # the run's label order (positive class last)
    _, val_samples = split_train_val(list_samples(data_dir, "train", classes=classes),
                                     cfg.val_fraction, cfg.val_seed)
    test_all = list_samples(data_dir, "test", exclude_leaked=False, classes=classes)
    # the run's config decides whether the 27 leaked images leave the headline split
    test_dedup = set(s.path for s in list_samples(data_dir, "test", cfg.exclude_leaked,
                                                  classes=classes))
    val = _split(model, val_samples, size, tta)
    test = _split(model, test_all, size, tta)
    if len(test.y) == 0:
        raise FileNotFoundError(f"{data_dir}: no test images (test/<class>/ folders)")
    keep = np.array([Path(f) in test_dedup for f in test.files])

    temperature = M.fit_temperature(val.y, val.p)
    val_cal = M.apply_temperature(val.p, temperature)
    test_cal = M.apply_temperature(test.p, temperature)
    threshold = M.threshold_for_sensitivity(val.y, val_cal, target_sensitivity,
                                            threshold_confidence)
    rule = (f"{M.describe_threshold_rule(target_sensitivity, threshold_confidence)} "
            f"(on temperature-scaled probability, T={down(temperature, 3)})")
    td, yd = test_cal[keep], test.y[keep]
    metrics = {
        "run_id": cfg.run_id, "model": cfg.model, "image_size": size, "data": str(data_dir),
        "tta": tta, "threshold": threshold, "threshold_rule": rule,
        "target_sensitivity": target_sensitivity, "threshold_confidence": threshold_confidence,
        "temperature": temperature,
        "n_val": int(len(val.y)), "n_test": int(keep.sum()), "n_test_full": int(len(test.y)),
        "val": M.binary_metrics(val.y, val_cal, threshold),
        "test": _with_ci(yd, td, threshold, n_boot, cfg.seed),
        "test_at_0.5": _with_ci(yd, td, 0.5, n_boot, cfg.seed),
        # for comparison: the threshold where the validation point estimate just reaches the target
        "threshold_point": (t_point := M.threshold_for_sensitivity(val.y, val_cal,
                                                                   target_sensitivity)),
        "test_at_point": M.binary_metrics(yd, td, t_point),
        "test_full": M.binary_metrics(test.y, test_cal, threshold),
        "calibration": {
            "ece_raw": M.expected_calibration_error(yd, test.p[keep]),
            "ece_calibrated": M.expected_calibration_error(yd, td),
            "ece_val_raw": M.expected_calibration_error(val.y, val.p),
            "ece_val_calibrated": M.expected_calibration_error(val.y, val_cal)},
        "labels": list(classes or CLASSES),
    }
    dedup = SplitPredictions(test.x[keep], yd, test.p[keep],
                             [f for f, k in zip(test.files, keep) if k])
    return Evaluation(run.path, metrics, val, dedup)
