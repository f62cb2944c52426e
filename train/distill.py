"""Soft targets from a teacher run for knowledge distillation (offline: one pass, no augmentation).

The teacher (any run folder, an ensemble included) predicts P(malignant) once for every
training image at its own input size; the student then trains on
``(1 - weight) * label + weight * teacher``. The teacher must share the student's validation
split, or the student's validation score would carry knowledge of its validation images.

Example:
    >>> targets = soft_targets(TrainConfig(teacher="runs/ensemble", distill_weight=0.5),
    ...                        train_samples, y_train)                     # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train.config import TrainConfig
from train.data import Sample, load_arrays
from train.run import RunDir

class TeacherError(ValueError):
    """The teacher run is missing or does not share the student's validation split."""


def check_teacher(cfg: TrainConfig) -> Path:
    run = RunDir(cfg.teacher)
    for f in (run.model_keras, run.config_json):
        if not f.is_file():
            raise TeacherError(f"teacher {f} not found; train or combine that run first")
    t = run.load_config()
    # exclude_leaked only changes the test split, so it may differ from the student's
    diff = [k for k in cfg.split_differences(t) if k != "exclude_leaked"]
    if diff:
        raise TeacherError(f"teacher {run}: {', '.join(diff)} differ from the student's, so its "
                           "validation split differs; use the same --split-seed (or --seed) and --val-fraction")
    return run.path


def teacher_probabilities(run: Path, samples: list[Sample], batch_size: int = 64) -> np.ndarray:
    """P(malignant) from ``run``'s model for ``samples`` (bad files skipped as in training)."""
    import keras

    from train.evaluation import predict

    model = keras.models.load_model(RunDir(run).model_keras, compile=False)
    x, _, _ = load_arrays(samples, int(model.input_shape[1]), verbose=False)
    return predict(model, x, batch_size)


def soft_targets(cfg: TrainConfig, samples: list[Sample], y: np.ndarray) -> np.ndarray:
    """Training targets: hard labels mixed with the teacher's probabilities."""
    p = teacher_probabilities(check_teacher(cfg), samples)
    if len(p) != len(y):
        raise TeacherError(f"teacher gave {len(p)} predictions for {len(y)} training images")
    w = float(cfg.distill_weight)
    return ((1 - w) * y.astype(np.float32) + w * p).astype(np.float32)
