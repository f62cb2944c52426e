"""Training loop: phases (frozen head, then fine-tuning), callbacks, resume, run folder.

Writes the run folder ``cfg.out`` (``train.run.RunDir``: the model with the best validation
AUC, config, history, curves, summary, and the resume state ``--resume`` continues from after
an interruption).

Example:
    >>> result = train(TrainConfig(model="seed_cnn", epochs=1, out="runs/x"))   # doctest: +SKIP
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from train.config import TrainConfig
from train.data import (DatasetError, class_weights, list_samples, load_arrays, make_dataset,
                        provenance, resolve_data_dir, split_train_val, task_labels)
from train.run import RunDir


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_val_auc: float
    seconds: float
    epochs_run: int


def _strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()  # all visible GPUs, or the CPU
    if name != "default":
        raise ValueError(f"unknown strategy '{name}'; use default or mirrored")
    return tf.distribute.get_strategy()


def _learning_rate(cfg: TrainConfig, lr: float, epochs: int, steps_per_epoch: int):
    """A float for the plateau schedule; a cosine decay to 1% over the phase otherwise."""
    import keras

    if cfg.schedule == "plateau":
        return lr
    if cfg.schedule != "cosine":
        raise ValueError(f"unknown schedule '{cfg.schedule}'; use plateau or cosine")
    return keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps_per_epoch), alpha=0.01)


def _compile(model, lr, label_smoothing: float, ema: bool = False, head: str = "sigmoid") -> None:
    """Adam; binary or categorical cross-entropy; ``val_auc`` (for a softmax: one-vs-rest,
    micro-averaged over the one-hot targets) selects the best epoch."""
    import keras

    loss, acc = ((keras.losses.BinaryCrossentropy, keras.metrics.BinaryAccuracy)
                 if head == "sigmoid" else
                 (keras.losses.CategoricalCrossentropy, keras.metrics.CategoricalAccuracy))
    model.compile(optimizer=keras.optimizers.Adam(lr, use_ema=ema, ema_momentum=0.99),
                  loss=loss(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.AUC(name="auc"), acc(name="acc")])


def _log_learning_rate():
    """Callback putting the optimizer's current LR into the logs (a schedule is not logged)."""
    import keras

    class LogLearningRate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                    self.model.optimizer.learning_rate))

    return LogLearningRate()


def _best_so_far(history_csv: Path) -> float | None:
    if not history_csv.is_file():
        return None
    import csv

    with open(history_csv) as f:
        vals = [float(r["val_auc"]) for r in csv.DictReader(f) if r.get("val_auc")]
    return max(vals) if vals else None


@dataclass
class _Data:
    """The decoded training and validation arrays of one run."""

    x_tr: np.ndarray
    y_tr: np.ndarray
    x_va: np.ndarray
    y_va: np.ndarray
    targets: np.ndarray  # y_tr, or its one-hot rows for a softmax
    class_weight: dict[int, float] | None
    skipped: list[str]


def _counts(y: np.ndarray, labels: list[str]) -> str:
    return ", ".join(f"{c} {int(n)}" for c, n in zip(labels, np.bincount(y, minlength=len(labels))))


def _load_data(cfg: TrainConfig) -> _Data:
    """Split, decode and weight the training data (bad files reported and skipped)."""
    labels, positive = task_labels(cfg.data, cfg.positive)
    if cfg.labels and set(cfg.labels) != set(labels):
        raise DatasetError(f"{cfg.data}: classes {', '.join(labels)} differ from the run's "
                           f"({', '.join(cfg.labels)}); resume with the same data, or a new --out")
    cfg.labels, cfg.positive = list(labels), positive
    samples = list_samples(cfg.data, "train", classes=labels)
    if not samples:
        raise FileNotFoundError(f"{cfg.data}: no training images found (one folder per class "
                                "under train/, or a MANIFEST.csv with path,label)")
    tr, va = split_train_val(samples, cfg.val_fraction, cfg.val_seed)
    x_tr, y_tr, bad_tr = load_arrays(tr, cfg.image_size)
    x_va, y_va, bad_va = load_arrays(va, cfg.image_size)
    cfg.trained_on = cfg.trained_on or provenance(cfg.data, labels, len(y_tr) + len(y_va))
    print(f"data: {cfg.data} | {cfg.head} over {', '.join(labels)}"
          + (f" (positive: {positive})" if positive else "") + f" | train {len(y_tr)} "
          f"({_counts(y_tr, labels)}) | val {len(y_va)} ({_counts(y_va, labels)}) | skipped "
          f"{len(bad_tr) + len(bad_va)} bad file(s)")
    cw = class_weights(y_tr, len(labels)) if cfg.class_weight else None
    if cfg.head == "softmax":  # one-hot targets for the categorical loss
        eye = np.eye(len(labels), dtype=np.float32)
        return _Data(x_tr, y_tr, x_va, eye[y_va], eye[y_tr], cw, bad_tr + bad_va)
    return _Data(x_tr, y_tr, x_va, y_va, y_tr, cw, bad_tr + bad_va)


def _callbacks(cfg: TrainConfig, run: RunDir, phase: str, best: float | None) -> list:
    """Backup (resume), EMA swap, best-model checkpoint, LR schedule, CSV history."""
    import keras

    # Order matters: the backup holds the raw weights, then (with --ema) the averaged
    # weights are swapped in for validation and the best-model checkpoint.
    callbacks = [keras.callbacks.BackupAndRestore(str(run.backup_dir / phase))]
    if cfg.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks.append(keras.callbacks.ModelCheckpoint(
        str(run.best_weights), monitor="val_auc", mode="max", save_best_only=True,
        save_weights_only=True, initial_value_threshold=best))
    if cfg.schedule == "plateau":
        callbacks += [
            keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience),
            keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=0.5,
                                              patience=max(1, cfg.patience // 2), min_lr=1e-6)]
    else:
        callbacks.append(_log_learning_rate())
    callbacks.append(keras.callbacks.CSVLogger(str(run.history_csv), append=True))
    return callbacks


def _fit_phases(cfg: TrainConfig, run: RunDir, model, data: _Data, resume: bool,
                verbose: int) -> None:
    """Each phase (head, then fine-tune) from the best weights so far; resumable."""
    from train.models import augmentation, unfreeze_top

    ds_tr = make_dataset(data.x_tr, data.targets, cfg.batch_size, True, cfg.seed,
                         augmentation(cfg.seed))
    ds_va = make_dataset(data.x_va, data.y_va, cfg.batch_size)
    steps = int(np.ceil(len(data.y_tr) / cfg.batch_size))
    start_epoch = 0
    for name, epochs, lr in cfg.phases():
        done_marker = run.backup_dir / f"{name}.done"
        if name == "finetune":
            unfreeze_top(model, cfg.fine_tune_layers)
        with _strategy(cfg.strategy).scope():
            _compile(model, _learning_rate(cfg, lr, epochs, steps), cfg.label_smoothing, cfg.ema,
                     cfg.head)
        if resume and done_marker.exists():
            print(f"resume: phase '{name}' already complete, skipping")
            start_epoch += epochs
            continue
        if epochs <= 0:
            continue
        print(f"phase '{name}': {epochs} epoch(s) at lr {lr:g}")
        best = _best_so_far(run.history_csv) if resume or start_epoch else None
        model.fit(ds_tr, validation_data=ds_va, epochs=start_epoch + epochs,
                  initial_epoch=start_epoch, class_weight=data.class_weight,
                  callbacks=_callbacks(cfg, run, name, best), verbose=verbose)
        if run.best_weights.exists():  # continue the next phase from the best weights so far
            model.load_weights(run.best_weights)
        done_marker.parent.mkdir(parents=True, exist_ok=True)
        done_marker.touch()
        start_epoch += epochs


def _save(cfg: TrainConfig, run: RunDir, model, data: _Data, seconds: float) -> TrainResult:
    """Best weights -> ``model.keras``; the summary and the curves beside it."""
    import keras
    import tensorflow as tf

    if run.best_weights.exists():
        model.load_weights(run.best_weights)
    with atomic_path(run.model_keras, suffix=".keras") as tmp:
        model.save(tmp)
    best_auc = _best_so_far(run.history_csv) or float("nan")
    run.write_json(run.summary_json, {
        "run_id": cfg.run_id, "best_val_auc": best_auc, "train_seconds": round(seconds, 1),
        "n_train": int(len(data.y_tr)), "n_val": int(len(data.y_va)),
        "skipped_files": data.skipped, "params": int(model.count_params()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__}})
    from train.plots import plot_history

    plot_history(run.history_csv, run.curves_png)
    with open(run.history_csv) as f:
        n_epochs = sum(1 for _ in f) - 1
    return TrainResult(run.path, run.model_keras, best_auc, seconds, n_epochs)


def train(cfg: TrainConfig, resume: bool = False, verbose: int = 1) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; returns where the best model was saved."""
    import keras
    import tensorflow as tf

    from train.models import build_model

    run = RunDir(cfg.out)
    run.path.mkdir(parents=True, exist_ok=True)
    cfg.data = str(resolve_data_dir(cfg.data or None))
    cfg.run_id = cfg.run_id or run.path.name
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = _load_data(cfg)
    cfg.save(run.config_json)
    with _strategy(cfg.strategy).scope():
        model = build_model(cfg.model, cfg.image_size, cfg.alpha, cfg.weights, cfg.dropout,
                            cfg.outputs)
    t0 = time.time()
    _fit_phases(cfg, run, model, data, resume, verbose)
    return _save(cfg, run, model, data, time.time() - t0)
