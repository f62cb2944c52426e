"""An exported artifact, run by the edge runner, per source and per lesion type.

The validation images of every source the run trained on (lesion-disjoint from training)
and the primary source's leak-free test split go through ``edge.classifier.Classifier``
(the manifest's preprocessing, colour constancy, temperature and this file's threshold),
with the quality gate and guard left out so every lesion image gets a probability
(``research/guard_eval.py`` measures those).
Reported: ROC AUC, sensitivity and specificity per source; per type the share called
malignant and the type accuracy; melanoma-vs-nevus AUC.

Example:
    python research/evaluate_sources.py --model models/model_int8.tflite --run runs/typed
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train.data import Sample, load_arrays, readable
from research.source_eval import split_report as report


def artifact_outputs(clf, items) -> tuple[np.ndarray, list]:
    """Raw output vectors of ``clf`` for ``items`` (unreadable files dropped) and the items.

    Images are decoded and sized once (``load_arrays``); ``Classifier.prepare`` then applies
    the manifest's colour constancy and input quantization, as the runner does.
    """
    m = clf.manifest
    samples = [Sample(i.path, i.label) for i in items]
    x, _, bad = load_arrays(samples, m.input_height, verbose=False)
    keep = {str(s.path) for s in readable(samples, bad)}
    kept = [i for i in items if str(i.path) in keep]
    out = np.stack([clf.raw_outputs(clf.prepare(img)) for img in x]) if len(x) else \
        np.zeros((0, m.output_size))
    return out, kept


def split_report(clf, items) -> dict:
    """Metrics of one split at the artifact's threshold (per source, acquisition group, type;
    with a modality output, each image at its predicted modality's threshold, and per
    modality and Fitzpatrick type)."""
    m = clf.manifest
    out, its = artifact_outputs(clf, items)
    p = np.array([m.calibrate(v) for v in out[:, 0]])
    types = ([m.classes[k] for k in out[:, 1:1 + len(m.classes)].argmax(1)]
             if m.classes else None)
    mods = [m.modality_of(v) for v in out] if m.modality_index >= 0 else None
    thr = np.array([m.threshold_for(k) for k in mods]) if mods else m.threshold
    return report(its, np.array([i.label for i in its]), p, thr, types, mods)


def unseen_report(model: Path, folder: Path) -> dict:
    """``model`` on every image of a source folder it never trained on (e.g. HAM10000-extra
    for a model trained on skin-lesions only): per acquisition group and per type.

    Only fair for a model that never saw the folder: a run that trained on it must be
    measured on its validation split (``source_report``). Twins (the same lesion as a
    primary-source training image, processed differently) are left out."""
    from edge.classifier import Classifier
    from research.multisource import load_source

    rep = split_report(Classifier(model), [i for i in load_source(folder) if not i.twin])
    rep["folder"] = Path(folder).name
    return rep


def source_report(model: Path, sources: list[str], val_fraction: float = 0.15,
                  seed: int = 0, splits: tuple[str, ...] = ("val", "test")) -> dict:
    """``{"val": ..., "test": ...}`` reports of ``model`` over the run's sources (``splits``)."""
    from edge.classifier import Classifier
    from research.multisource import gather

    clf = Classifier(model)
    g = gather(sources, val_fraction, seed)
    return {"model": str(model), "threshold": clf.manifest.threshold,
            "modality_thresholds": dict(clf.manifest.modality_thresholds),
            "trained_on": clf.manifest.trained_on, "disclaimer": clf.manifest.disclaimer,
            **{s: split_report(clf, g[s]) for s in splits}}
