"""Evaluation of an N-class (softmax) run: per-class metrics, confusion matrix, CIs.

The test split is scored once; the validation split (the run's seeded split) chooses the
positive class's threshold when the run names one (``--positive``), with the binary runs'
rule (``core.metrics.threshold_for_sensitivity``, one-vs-rest). Writes ``metrics.json``,
``confusion.json`` and ``confusion.png`` into the run folder.

Example:
    >>> m = evaluate_classes("runs/mine")                       # doctest: +SKIP
    >>> m["test"]["balanced_accuracy"], m["test"]["ci95"]["macro_roc_auc"]   # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import metrics as M
from core.digits import down
from train.data import list_samples, load_arrays, resolve_data_dir, split_train_val
from train.run import RunDir

def predicted(probs: np.ndarray, positive: int, threshold: float | None) -> np.ndarray:
    """Labels as ``edge.manifest.Manifest.read`` gives them: the most likely class, or the
    positive class whenever its probability reaches ``threshold``.

    >>> predicted(np.array([[0.3, 0.5, 0.2], [0.1, 0.3, 0.6]]), 0, 0.25).tolist()
    [0, 2]
    """
    order = np.argsort(-probs, axis=1, kind="stable")
    pred = order[:, 0].copy()
    if positive < 0 or threshold is None:
        return pred
    other = np.where(order[:, 0] == positive, order[:, 1], order[:, 0])
    return np.where(probs[:, positive] >= threshold, positive, other)


def _probs(model, samples, size: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = load_arrays(samples, size, verbose=False)
    p = model.predict(x.astype("float32"), batch_size=64, verbose=0) if len(x) else \
        np.zeros((0, int(model.output_shape[-1])))
    return y, np.asarray(p, np.float64)


def evaluate_classes(run_dir: str | Path, data: str | None = None, n_boot: int = 1000,
                     model=None, target_sensitivity: float = 0.95,
                     threshold_confidence: float = 0.95) -> dict:
    """Score a softmax run on its test split; write its metrics and confusion matrix."""
    import keras

    from train.plots import plot_confusion_matrix

    run = RunDir(run_dir)
    cfg = run.load_config()
    labels = tuple(cfg.labels)
    data_dir = resolve_data_dir(data or cfg.data or None)
    model = model or keras.models.load_model(run.model_keras, compile=False)
    size = int(model.input_shape[1])
    _, val = split_train_val(list_samples(data_dir, "train", classes=labels),
                             cfg.val_fraction, cfg.val_seed)
    test = list_samples(data_dir, "test", cfg.exclude_leaked, classes=labels)
    if not test:
        raise FileNotFoundError(f"{data_dir}: no test images (test/<class>/ folders)")
    y_va, p_va = _probs(model, val, size)
    y_te, p_te = _probs(model, test, size)
    pos = labels.index(cfg.positive) if cfg.positive else -1
    thr, rule = None, "the most likely class (no positive class named)"
    if pos >= 0:
        thr = M.threshold_for_sensitivity(y_va == pos, p_va[:, pos], target_sensitivity,
                                          threshold_confidence)
        rule = (f"{cfg.positive} when p({cfg.positive}) >= the threshold: "
                f"{M.describe_threshold_rule(target_sensitivity, threshold_confidence)}")
    pred_te = predicted(p_te, pos, thr)
    test_m = M.multiclass_metrics(y_te, p_te, labels, pred_te)
    test_m["ci95"] = M.multiclass_bootstrap_ci(y_te, p_te, n_boot, cfg.seed, pred=pred_te)
    metrics = {"run_id": cfg.run_id, "model": cfg.model, "image_size": size,
               "data": str(data_dir), "task": "multiclass", "labels": list(labels),
               "positive": cfg.positive, "threshold": thr, "threshold_rule": rule,
               "temperature": 1.0, "n_val": int(len(y_va)), "n_test": int(len(y_te)),
               "val": M.multiclass_metrics(y_va, p_va, labels, predicted(p_va, pos, thr)),
               "test": test_m}
    run.write_json(run.metrics_json, metrics)
    run.write_json(run.confusion_json, test_m["confusion"])
    plot_confusion_matrix(np.array(test_m["confusion"]["matrix"]), labels, run.confusion_png)
    return metrics


def summary_lines(m: dict) -> list[str]:
    """Console lines: headline metrics with CIs, then one line per class."""
    t, ci = m["test"], m["test"]["ci95"]
    rng = lambda k: f"[{down(ci[k][0])}, {down(ci[k][1])}]"  # noqa: E731
    lines = [f"test ({m['n_test']} images): accuracy {down(t['accuracy'])} {rng('accuracy')}, "
             f"balanced accuracy {down(t['balanced_accuracy'])} {rng('balanced_accuracy')}, "
             f"macro ROC AUC {down(t['macro_roc_auc'])} {rng('macro_roc_auc')} (95% CIs)",
             f"label: {m['threshold_rule']}"]
    for c, r in t["per_class"].items():
        lines.append(f"  {c:<12} n {r['n']:>4}  recall {down(r['recall'])}  precision "
                     f"{down(r['precision'])}  ROC AUC {down(r['roc_auc'])}")
    return lines
