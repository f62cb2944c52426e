"""A teacher built from cached features: linear probes, trained runs, and their mean.

Members:
- a *probe*: standardised multinomial logistic regression on an encoder's cached pooled
  features (``train/encoders.py``) over the lesion types, and benign/malignant per source
  where the type is unknown (``class_key``); fitted on every augmented view of the training images and
  predicting the mean over views (test-time augmentation in the teacher only). Its soft
  targets for training images are **out of fold** (K folds, whole lesions per fold), so a
  student never learns a probe's memory of its own training images;
- a trained *run* (any run folder with ``model.keras``, an ensemble included): its
  predictions, in-sample for the images it trained on.

The teacher is the mean of the members' probabilities, chosen by greedy forward selection on
validation (the mean of the per-source validation AUCs).

Example:
    >>> y = np.array([0, 1] * 20); x = (y[:, None, None] + np.random.default_rng(0).normal(size=(40, 2, 3))) / 2
    >>> cls = ["a:1" if v else "a:0" for v in y]
    >>> oof, (p_val,), c = probe(x, cls, {"a:1"}, [str(i) for i in range(40)], [x[:4]], c_grid=(1.0,), folds=4)
    >>> round(float(np.mean((oof > .5) == y)), 1) >= 0.8, p_val.shape
    (True, (4,))
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field

import numpy as np

from core import metrics as M

C_GRID = (0.001, 0.003, 0.01, 0.03)


@dataclass
class Member:
    """One teacher member's P(malignant) on train (out of fold for probes), val and test."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)


def fold_of(keys: list[str], folds: int) -> np.ndarray:
    """Fold number per image from its lesion key (stable across runs and Python processes)."""
    return np.array([zlib.crc32(k.encode()) % folds for k in keys])


def class_key(label: int, dx: str, source: str) -> str:
    """The probe's class: the lesion type where known, else ``source:label``.

    Source-specific benign/malignant classes keep the probe from reading "which source" as
    "which label": sources differ in look and in their mix of types.

    >>> class_key(1, "", "skin-lesions"), class_key(0, "bkl", "ham10000-extra")
    ('skin-lesions:1', 'bkl')
    """
    return dx or f"{source}:{label}"


def _fit(x: np.ndarray, cls: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, v, d = x.shape
    clf = make_pipeline(StandardScaler(), LogisticRegression(
        C=c, class_weight="balanced", max_iter=3000))
    return clf.fit(x.reshape(n * v, d).astype(np.float32), np.repeat(cls, v))


def _predict(clf, x: np.ndarray, malignant: np.ndarray) -> np.ndarray:
    n, v, d = x.shape
    prob = clf.predict_proba(x.reshape(n * v, d).astype(np.float32))
    cols = malignant[clf.classes_]
    return prob[:, cols].sum(1).reshape(n, v).mean(1)


def _oof(x, cls, malignant, fold, c: float) -> np.ndarray:
    out = np.zeros(len(cls))
    for f in np.unique(fold):
        k = fold == f
        out[k] = _predict(_fit(x[~k], cls[~k], c), x[k], malignant)
    return out


def probe(x_train: np.ndarray, classes: list[str], malignant: set[str], keys: list[str],
          evals: list[np.ndarray], c_grid=C_GRID, folds: int = 5
          ) -> tuple[np.ndarray, list[np.ndarray], float]:
    """A multinomial linear probe over ``classes`` (one key per training image, see
    ``class_key``) whose P(malignant) is the summed probability of the ``malignant`` classes.

    Returns out-of-fold P(malignant) for the training images, P(malignant) for each of
    ``evals`` (``[N, views, D]``) from a fit on all of ``x_train``, and the ``C`` used: the
    grid value with the best out-of-fold AUC (training data only).
    """
    names = sorted(set(classes))
    cls = np.array([names.index(c) for c in classes])
    mal = np.array([n in malignant for n in names])
    y, fold = mal[cls].astype(int), fold_of(keys, folds)
    best = max(((M.roc_auc(y, o), c, o) for c in c_grid for o in [_oof(x_train, cls, mal, fold, c)]),
               key=lambda t: t[0])
    clf, _ = fit_probe(x_train, classes, best[1])
    return best[2], [_predict(clf, e, mal) for e in evals], best[1]


def fit_probe(x_train: np.ndarray, classes: list[str], c: float):
    """``(fitted scaler + logistic-regression pipeline, class names)`` on every training image
    and view; the pipeline's class ``k`` is ``names[k]`` (names sorted)."""
    names = sorted(set(classes))
    return _fit(x_train, np.array([names.index(k) for k in classes]), c), names


def source_score(y: np.ndarray, p: np.ndarray, sources: list[str]) -> float:
    """Mean of the per-source ROC AUCs (sources with both classes; ``source_eval.per_source``).

    >>> source_score(np.array([0, 1, 0, 1]), np.array([.1, .9, .8, .2]), ["a", "a", "b", "b"])
    0.5
    """
    from train.source_eval import per_source

    return float(np.mean([r["roc_auc"] for r in per_source(y, p, sources, 0.5).values()
                          if "roc_auc" in r]))


def select(members: list[Member], y_val: np.ndarray, sources: list[str],
           max_members: int = 6) -> tuple[list[str], list[dict]]:
    """Greedy forward selection (with repetition) of the member mean on validation.

    Returns the chosen names and the trace (one row per step: added member, score).
    """
    chosen, trace, best = [], [], -1.0
    by_name = {m.name: m for m in members}
    while len(chosen) < max_members:
        scores = {n: source_score(y_val, np.mean([by_name[c].val for c in chosen + [n]], 0), sources)
                  for n in by_name}
        name = max(scores, key=scores.get)
        if scores[name] <= best + 1e-6:
            break
        best = scores[name]
        chosen.append(name)
        trace.append({"added": name, "val_score": best})
    return chosen, trace


def select_with_floor(members: list[Member], y_val: np.ndarray, sources: list[str], primary: str,
                      floor: float, max_members: int = 6) -> tuple[list[str], list[dict]]:
    """Every mean of up to ``max_members`` members (repetition = weight) whose ``primary``
    source validation AUC is >= ``floor``; the best mean per-source AUC wins, the smaller
    mix on a tie. Exhaustive, so a pair that only passes together is found (greedy steps
    cannot reach it when no single member passes). Returns ``([], [])`` when none passes.

    >>> y = np.array([0, 1, 0, 1]); src = ["a", "a", "b", "b"]
    >>> ms = [Member("good_a", y, np.array([.1, .9, .6, .4]), y),
    ...       Member("good_b", y, np.array([.6, .4, .1, .9]), y)]
    >>> select_with_floor(ms, y, src, "a", 1.0)[0]  # good_b alone fails the floor on "a"
    ['good_a', 'good_b']
    """
    k = np.array([s == primary for s in sources])
    best = None
    for n in range(1, max_members + 1):
        for combo in itertools.combinations_with_replacement(range(len(members)), n):
            p = np.mean([members[i].val for i in combo], axis=0)
            prim = M.roc_auc(y_val[k], p[k])
            if prim < floor:
                continue
            score = source_score(y_val, p, sources)
            if best is None or score > best[0] + 1e-9:
                best = (score, prim, [members[i].name for i in combo])
    if best is None:
        return [], []
    return best[2], [{"added": " + ".join(best[2]), "val_score": best[0], "primary_val_auc": best[1],
                      "floor": floor}]


def mix(members: list[Member], names: list[str], split: str) -> np.ndarray:
    """The teacher's P(malignant) on ``split`` (``train``/``val``/``test``): the members' mean."""
    by_name = {m.name: m for m in members}
    return np.mean([getattr(by_name[n], split) for n in names], axis=0)


def leave_group_out(x: dict, items: dict, malignant: set[str], c: float) -> dict:
    """Leave-one-acquisition-group-out for a probe: for each group, fit on every training
    image outside it (all sources) and score all of the group's images (train and validation);
    beside it, the group's validation images scored by a probe that saw the group's training
    images. ``x``/``items``: ``{"train", "val"}`` features ``[N, views, D]`` and items."""
    tr, va = items["train"], items["val"]
    keys = [class_key(i.label, i.dx, i.source) for i in tr]
    names = sorted(set(keys))
    cls, mal = np.array([names.index(k) for k in keys]), np.array([n in malignant for n in names])
    seen = _predict(_fit(x["train"], cls, c), x["val"], mal)
    out = {}
    for grp in sorted({i.group for i in tr + va if i.group}):
        out_tr = np.array([i.group != grp for i in tr])
        in_va = np.array([i.group == grp for i in va])
        clf = _fit(x["train"][out_tr], cls[out_tr], c)
        feats = np.concatenate([x["train"][~out_tr], x["val"][in_va]])
        y = np.array([i.label for i in tr if i.group == grp] + [i.label for i in va if i.group == grp])
        row = {"n": int(len(y)), "n_malignant": int(y.sum())}
        if len(set(y.tolist())) == 2:
            row["auc_held_out"] = float(M.roc_auc(y, _predict(clf, feats, mal)))
        yv = np.array([i.label for i in va])[in_va]
        if len(set(yv.tolist())) == 2:
            row["auc_val_held_out"] = float(M.roc_auc(yv, _predict(clf, x["val"][in_va], mal)))
            row["auc_val_seen"] = float(M.roc_auc(yv, seen[in_va]))
        out[grp] = row
    return out
