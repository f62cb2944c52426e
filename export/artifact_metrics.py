"""Metrics of an exported artifact on the leak-free test split, computed with the edge runner.

Needs no TensorFlow and no training run: the manifest beside (or inside) the model gives the
preprocessing, threshold and temperature. ``export/evaluate_artifact.py`` prints them;
``export/card.py`` puts them in MODEL_CARD.md.

Example:
    >>> m = artifact_metrics(Path("models/model_int8.tflite"), Path("data"))  # doctest: +SKIP
    >>> ci_rows({"accuracy": 0.9, "ci95": {"accuracy": (0.85, 0.94)}}, keys=("accuracy",))
    ['| Accuracy | 0.9000 | 0.8500-0.9400 |']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import metrics as M
from core.digits import down

NAMES = {"accuracy": "Accuracy", "sensitivity": "Sensitivity", "specificity": "Specificity",
         "precision": "Precision", "f1": "F1", "balanced_accuracy": "Balanced accuracy",
         "roc_auc": "ROC AUC", "pr_auc": "PR AUC"}


def artifact_metrics(model: Path, data_dir: Path, n_boot: int = 1000) -> dict:
    """Metrics (with bootstrap 95% CIs and ECE) at the manifest's threshold: with a modality
    output, each image at its predicted modality's threshold, as the runner labels it (then
    ``threshold`` is None and ``modality_thresholds`` and ``modalities`` say what was used)."""
    from edge.classifier import Classifier
    from train.data import list_samples, load_arrays

    clf = Classifier(model)
    man = clf.manifest
    samples = list_samples(data_dir, "test", exclude_leaked=True)
    x, y, _ = load_arrays(samples, man.input_height, verbose=False)
    vecs = [clf.raw_outputs(clf.prepare(img)) for img in x]
    p = np.array([man.calibrate(v[0]) for v in vecs])
    mods = [man.modality_of(v) for v in vecs]
    thr = (np.array([man.threshold_for(k) for k in mods]) if man.modality_thresholds
           else man.threshold)
    m = M.binary_metrics(y, p, thr)
    m["ci95"] = M.bootstrap_ci(y, p, thr, n_boot)
    if man.modality_thresholds:
        m["threshold"] = None
        m["modality_thresholds"] = dict(man.modality_thresholds)
        m["modalities"] = {k: mods.count(k) for k in sorted(set(mods))}
    m["ece"] = M.expected_calibration_error(y, p)
    m["trained_on"], m["disclaimer"] = clf.manifest.trained_on, clf.manifest.disclaimer
    return m


def ci_rows(m: dict, keys=tuple(NAMES)) -> list[str]:
    """Markdown rows ``| metric | value | lo-hi |`` for ``keys`` of a metrics dict with ``ci95``;
    four decimals, so a reader never meets a value rounded up past what was measured at three."""
    return [f"| {NAMES[k]} | {down(m[k])} | {down(m['ci95'][k][0])}-{down(m['ci95'][k][1])} |"
            for k in keys]
