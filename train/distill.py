"""Soft targets from a teacher for knowledge distillation (offline: one value per image).

The teacher is either a run folder (an ensemble included), which predicts P(malignant) once
for every training image at its own input size, or a teacher folder from
``train/build_teacher.py``, whose ``teacher_targets.csv`` holds them (out of fold for its
probes' training images). The student trains on ``(1 - weight) * label + weight * teacher``.
The teacher must share the student's validation split, or the student's validation score
would carry knowledge of its validation images. A teacher folder also lists the training
images of its other sources (e.g. ham10000-extra): ``extra_training`` hands them to the student.

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
    model = run.targets_csv if run.targets_csv.is_file() else run.model_keras
    for f in (model, run.config_json):
        if not f.is_file():
            raise TeacherError(f"teacher {f} not found; train or combine that run first, "
                               "or build a teacher with train/build_teacher.py")
    if cfg.teacher_extra and not run.targets_csv.is_file():
        raise TeacherError(f"--teacher-extra needs a teacher folder from train/build_teacher.py; "
                           f"{run} has no {run.targets_csv.name}")
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


def read_targets(run: Path) -> list[dict]:
    """The rows of a teacher folder's ``teacher_targets.csv`` (path, split, source, label, teacher)."""
    import csv

    with open(RunDir(run).targets_csv, newline="") as f:
        return list(csv.DictReader(f))


def teacher_lookup(run: Path, samples: list[Sample]) -> np.ndarray:
    """The teacher folder's P(malignant) for ``samples``, by path."""
    by_path = {r["path"]: float(r["teacher"]) for r in read_targets(run)}
    missing = [str(s.path) for s in samples if str(s.path) not in by_path]
    if missing:
        raise TeacherError(f"teacher {run} has no target for {len(missing)} training image(s), "
                           f"e.g. {missing[0]}; rebuild it with train/build_teacher.py on this data")
    return np.array([by_path[str(s.path)] for s in samples], np.float32)


def extra_training(run: Path, primary: str) -> list[tuple[Sample, float]]:
    """Training images of the teacher's other sources (not ``primary``) with their targets."""
    return [(Sample(Path(r["path"]), int(r["label"])), float(r["teacher"]))
            for r in read_targets(run) if r["split"] == "train" and r["source"] != primary]


def soft_targets(cfg: TrainConfig, samples: list[Sample], y: np.ndarray) -> np.ndarray:
    """Training targets: hard labels mixed with the teacher's probabilities."""
    run = check_teacher(cfg)
    p = (teacher_lookup(run, samples) if RunDir(run).targets_csv.is_file()
         else teacher_probabilities(run, samples))
    if len(p) != len(y):
        raise TeacherError(f"teacher gave {len(p)} predictions for {len(y)} training images")
    w = float(cfg.distill_weight)
    return ((1 - w) * y.astype(np.float32) + w * p).astype(np.float32)
