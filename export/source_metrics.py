"""An exported artifact, run by the edge runner, per source and per lesion type.

The validation images of every source the run trained on (lesion-disjoint from training)
and the primary source's leak-free test split go through ``edge.classifier.Classifier``
(the manifest's preprocessing, colour constancy, temperature and this file's threshold),
with the quality gate and guard left out so every lesion image gets a probability
(``export/guard_eval.py`` measures those).
Reported: ROC AUC, sensitivity and specificity per source; per type the share called
malignant and the type accuracy; melanoma-vs-nevus AUC.

Example:
    python export/evaluate_sources.py --model models/model_int8.tflite --run runs/typed
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train import metrics as M
from train.data import Sample, load_arrays, readable
from train.source_eval import mel_vs_nv_auc, per_source, per_type


def artifact_outputs(clf, items) -> tuple[np.ndarray, list]:
    """Raw output vectors of ``clf`` for ``items`` (unreadable files dropped) and the items."""
    m = clf.manifest
    samples = [Sample(i.path, i.label) for i in items]
    x, _, bad = load_arrays(samples, m.input_height, verbose=False,
                            color_constancy=m.color_constancy)
    keep = {str(s.path) for s in readable(samples, bad)}
    kept = [i for i in items if str(i.path) in keep]
    # prepare() would apply colour constancy again: quantize the fitted image directly
    from edge.preprocess import to_model_input

    spec = clf.runtime.input
    out = np.stack([clf.raw_outputs(to_model_input(img, spec.dtype, spec.scale, spec.zero_point))
                    for img in x]) if len(x) else np.zeros((0, m.output_size))
    return out, kept


def split_report(clf, items) -> dict:
    """Metrics of one split at the artifact's threshold (per source, acquisition group, type)."""
    m = clf.manifest
    out, its = artifact_outputs(clf, items)
    y = np.array([i.label for i in its])
    p = np.array([m.calibrate(v) for v in out[:, 0]])
    types = ([m.classes[k] for k in out[:, 1:1 + len(m.classes)].argmax(1)]
             if m.classes else None)
    dx = [i.dx for i in its]
    groups = [i.group for i in its]
    return {"n": len(y), "overall": M.binary_metrics(y, p, m.threshold),
            "per_source": per_source(y, p, [i.source for i in its], m.threshold),
            "per_group": per_source(y, p, groups, m.threshold) if any(groups) else {},
            "per_type": per_type(y, p, dx, m.threshold, types),
            "mel_vs_nv_auc": mel_vs_nv_auc(y, p, dx)}


def unseen_report(model: Path, folder: Path) -> dict:
    """``model`` on every image of a source folder it never trained on (e.g. HAM10000-extra
    for a model trained on skin-lesions only): per acquisition group and per type.

    Only fair for a model that never saw the folder: a run that trained on it must be
    measured on its validation split (``source_report``). Twins (the same lesion as a
    primary-source training image, processed differently) are left out."""
    from edge.classifier import Classifier
    from train.sources import load_source

    rep = split_report(Classifier(model), [i for i in load_source(folder) if not i.twin])
    rep["folder"] = Path(folder).name
    return rep


def source_report(model: Path, sources: list[str], val_fraction: float = 0.15,
                  seed: int = 0) -> dict:
    """``{"val": ..., "test": ...}`` reports of ``model`` over the run's sources."""
    from edge.classifier import Classifier
    from train.sources import gather

    clf = Classifier(model)
    g = gather(sources, val_fraction, seed)
    return {"model": str(model), "threshold": clf.manifest.threshold,
            "val": split_report(clf, g["val"]), "test": split_report(clf, g["test"])}
