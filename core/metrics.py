"""Binary classification metrics in plain numpy: point metrics, curves, bootstrap CIs,
operating-threshold selection and calibration (ECE, temperature scaling); multiclass metrics
(``multiclass_metrics``, ``multiclass_bootstrap_ci``) at the end.

No TensorFlow or scikit-learn needed, so export and benchmark code can reuse it.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1]); p = np.array([0.1, 0.6, 0.4, 0.9])
    >>> roc_auc(y, p)
    0.75
    >>> binary_metrics(y, p, 0.5)["accuracy"]
    0.5
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

POINT_METRICS = ("accuracy", "precision", "sensitivity", "specificity", "f1",
                 "balanced_accuracy")
CURVE_METRICS = ("roc_auc", "pr_auc")


def _safe(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    return {"tp": int(np.sum(y & pred)), "fp": int(np.sum(~y & pred)),
            "tn": int(np.sum(~y & ~pred)), "fn": int(np.sum(y & ~pred))}


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):  # average ranks over ties
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending; a point per distinct score."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, float)
    thr = np.unique(p)[::-1]
    tpr = np.array([np.sum(y & (p >= t)) for t in thr]) / max(1, y.sum())
    fpr = np.array([np.sum(~y & (p >= t)) for t in thr]) / max(1, (~y).sum())
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thr]


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) for each distinct score, thresholds descending."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, float)
    thr = np.unique(p)[::-1]
    tp = np.array([np.sum(y & (p >= t)) for t in thr], float)
    pp = np.array([np.sum(p >= t) for t in thr], float)
    return tp / np.maximum(pp, 1), tp / max(1, y.sum()), thr


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """PR AUC as average precision: sum over thresholds of (R_n - R_{n-1}) * P_n."""
    if not np.any(y):
        return float("nan")
    prec, rec, _ = pr_curve(y, p)
    return float(np.sum(np.diff(np.r_[0.0, rec]) * prec))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold=0.5) -> dict[str, float]:
    """All point metrics at ``threshold`` (positive when ``p >= threshold``) plus ROC/PR AUC.

    ``threshold`` may be one value per image (e.g. each image's modality threshold); the
    ``threshold`` field is then None.
    """
    y = np.asarray(y).astype(int)
    c = confusion(y, np.asarray(p) >= threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    sens, spec = _safe(tp, tp + fn), _safe(tn, tn + fp)
    prec = _safe(tp, tp + fp)
    return {
        "accuracy": _safe(tp + tn, len(y)), "precision": prec,
        "sensitivity": sens, "recall": sens, "specificity": spec,
        "f1": _safe(2 * prec * sens, prec + sens), "balanced_accuracy": (sens + spec) / 2,
        "roc_auc": roc_auc(y, p), "pr_auc": average_precision(y, p),
        "threshold": float(threshold) if np.ndim(threshold) == 0 else None,
        "n": int(len(y)), **c,
    }


def bootstrap_ci(y: np.ndarray, p: np.ndarray, threshold, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap (resampling images) 95% CI for every metric (``threshold``: one
    value, or one per image)."""
    y, p = np.asarray(y), np.asarray(p)
    thr = np.broadcast_to(np.asarray(threshold, float), y.shape) if np.ndim(threshold) else None
    rng = np.random.default_rng(seed)
    names = POINT_METRICS + CURVE_METRICS
    samples = {k: [] for k in names}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        m = binary_metrics(y[idx], p[idx], threshold if thr is None else thr[idx])
        for k in names:
            if not math.isnan(m[k]):
                samples[k].append(m[k])
    return {k: (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2)))
            if v else (float("nan"), float("nan")) for k, v in samples.items()}


def wilson_lower_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Wilson score lower bound of a proportion ``k / n``.

    >>> round(wilson_lower_bound(180, 184), 3)
    0.952
    """
    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float = 0.95,
                              confidence: float = 0.0) -> float:
    """The highest threshold whose sensitivity on (y, p) is at least ``target``.

    Highest = best specificity among thresholds meeting the sensitivity target. With
    ``confidence`` (e.g. 0.95), the one-sided Wilson lower bound of the sensitivity must reach
    ``target``, not the point estimate: a threshold picked exactly at the target on a few
    hundred validation images lands below it on new images about half the time.
    """
    y, p = np.asarray(y).astype(bool), np.asarray(p, float)
    pos = np.sort(p[y])[::-1]
    n = len(pos)
    if n == 0:
        return 0.5
    k = max(1, math.ceil(target * n))  # positives that must score >= threshold
    if confidence > 0:
        while k < n and wilson_lower_bound(k, n, confidence) < target:
            k += 1
    return float(pos[k - 1])


def describe_threshold_rule(target: float = 0.95, confidence: float = 0.0) -> str:
    """Words for ``threshold_for_sensitivity``'s rule, as manifests and reports state it.

    >>> describe_threshold_rule(0.95, 0.95)
    'highest threshold with one-sided 95% Wilson lower bound of validation sensitivity >= 0.95'
    """
    bound = (f"one-sided {confidence:.0%} Wilson lower bound of validation sensitivity"
             if confidence > 0 else "validation sensitivity")
    return f"highest threshold with {bound} >= {target:g}"


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins on P(positive): sum_b |acc_b - conf_b| * n_b / n."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += abs(y[m].mean() - p[m].mean()) * m.sum() / len(p)
    return float(ece)


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = 10):
    """(bin centres, observed positive rate, mean confidence, counts) for a reliability plot."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    obs, conf, cnt = [], [], []
    for b in range(bins):
        m = idx == b
        cnt.append(int(m.sum()))
        obs.append(float(y[m].mean()) if m.any() else float("nan"))
        conf.append(float(p[m].mean()) if m.any() else float("nan"))
    return (edges[:-1] + edges[1:]) / 2, np.array(obs), np.array(conf), np.array(cnt)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T); the same formula as ``edge.manifest.Manifest.calibrate``."""
    return 1 / (1 + np.exp(-_logit(p) / temperature))


def fit_temperature(y: np.ndarray, p: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood (golden-section on log T)."""
    z, y = _logit(p), np.asarray(y, float)

    def nll(log_t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-z / math.exp(log_t))), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(80):
        if nll(a) < nll(b):
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    return float(math.exp((lo + hi) / 2))


# --- multiclass ---------------------------------------------------------------------------


def _nan_div(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0 (an undefined multiclass value, unlike ``_safe``)."""
    return float(num / den) if den else float("nan")


def _check_multiclass(y: np.ndarray, probs: np.ndarray,
                      pred: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, probs, pred) as int [N], float [N, C], int [N]; ValueError on a bad shape or label."""
    y, probs = np.asarray(y), np.asarray(probs, float)
    if probs.ndim != 2 or y.ndim != 1 or len(y) != len(probs):
        raise ValueError(f"need y [N] and probs [N, C]; got {y.shape} and {probs.shape}")
    pred = np.argmax(probs, axis=1) if pred is None else np.asarray(pred)
    if pred.shape != y.shape:
        raise ValueError(f"pred has shape {pred.shape}, y has {y.shape}")
    n_classes = probs.shape[1]
    for name, v in (("y", y), ("pred", pred)):
        if v.size and (not np.issubdtype(v.dtype, np.integer) or v.min() < 0
                       or v.max() >= n_classes):
            raise ValueError(f"{name} must hold integer class indices in [0, {n_classes})")
    return y.astype(int), probs, pred.astype(int)


def confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """C x C counts, rows = true class, columns = predicted class.

    >>> confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), 3).tolist()
    [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    """
    y, pred = np.asarray(y, int), np.asarray(pred, int)
    counts = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _average_ranks(p: np.ndarray) -> np.ndarray:
    """1-based ranks of ``p`` with ties sharing their average rank (as ``roc_auc`` ranks)."""
    _, inv, counts = np.unique(p, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2 + 1)[inv.ravel()]


def _ovr_roc_aucs(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC per class (the same value as ``roc_auc``, vectorised); NaN when a class
    has no positives or no negatives."""
    n, n_classes = probs.shape
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        pos = y == c
        n_pos = int(pos.sum())
        if 0 < n_pos < n:
            r = _average_ranks(probs[:, c])[pos].sum()
            out[c] = (r - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))
    return out


def _headline(y: np.ndarray, probs: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy and macro_roc_auc of checked arrays (bootstrap inner loop)."""
    cm = confusion_matrix(y, pred, probs.shape[1])
    support = cm.sum(axis=1)
    present = support > 0
    aucs = _ovr_roc_aucs(y, probs)
    return {"accuracy": _nan_div(np.trace(cm), len(y)),
            "balanced_accuracy": float(np.mean(np.diag(cm)[present] / support[present]))
            if present.any() else float("nan"),
            "macro_roc_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")}


def multiclass_metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                       pred: np.ndarray | None = None) -> dict:
    """Accuracy, balanced accuracy, macro one-vs-rest ROC AUC, per-class metrics, confusion.

    ``y``: int class indices [N] into ``labels``; ``probs``: class probabilities [N, C];
    ``pred``: predicted indices [N], default ``argmax(probs)``. ``balanced_accuracy`` averages
    recall over the classes present in ``y``; ``macro_roc_auc`` averages the one-vs-rest AUCs
    that are defined. Undefined values (recall of an absent class, precision of a class never
    predicted, AUC without positives or negatives) are NaN.

    >>> y = np.array([0, 1, 2, 2]); probs = np.array(
    ...     [[.8, .1, .1], [.2, .3, .5], [.1, .2, .7], [.2, .5, .3]])
    >>> m = multiclass_metrics(y, probs, ["a", "b", "c"])
    >>> m["accuracy"], m["balanced_accuracy"], m["confusion"]["matrix"]
    (0.5, 0.5, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    >>> m["per_class"]["c"]
    {'n': 2, 'recall': 0.5, 'precision': 0.5, 'roc_auc': 0.75, 'f1': 0.5}
    >>> round(m["macro_roc_auc"], 4)  # (1 + 2/3 + 3/4) / 3
    0.8056
    """
    y, probs, pred = _check_multiclass(y, probs, pred)
    labels = [str(label) for label in labels]
    if len(labels) != probs.shape[1] or len(set(labels)) != len(labels):
        raise ValueError(f"need {probs.shape[1]} distinct labels, got {labels}")
    cm = confusion_matrix(y, pred, len(labels))
    per_class = {}
    for c, label in enumerate(labels):
        tp, support, predicted = int(cm[c, c]), int(cm[c].sum()), int(cm[:, c].sum())
        per_class[label] = {
            "n": support, "recall": _nan_div(tp, support), "precision": _nan_div(tp, predicted),
            "roc_auc": roc_auc(y == c, probs[:, c]),
            "f1": _nan_div(2 * tp, support + predicted)}  # = 2PR / (P + R) when both defined
    aucs = [v["roc_auc"] for v in per_class.values() if not math.isnan(v["roc_auc"])]
    recalls = [v["recall"] for v in per_class.values() if v["n"]]
    return {"n": int(len(y)), "accuracy": _nan_div(np.trace(cm), len(y)),
            "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
            "macro_roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
            "per_class": per_class,
            "confusion": {"labels": labels, "matrix": cm.tolist()}}


MULTICLASS_CI_METRICS = ("accuracy", "balanced_accuracy", "macro_roc_auc")


def multiclass_bootstrap_ci(y: np.ndarray, probs: np.ndarray, n_boot: int = 1000,
                            seed: int = 0, confidence: float = 0.95,
                            pred: np.ndarray | None = None) -> dict[str, list[float]]:
    """Percentile bootstrap (resampling images) CIs of accuracy, balanced_accuracy and
    macro_roc_auc: ``{name: [lo, hi]}``. A resample where a metric is NaN (e.g. no class with
    both positives and negatives) is skipped for it; ``[nan, nan]`` when every one is.

    ``pred`` (default ``argmax(probs)``) is fixed per image and resampled with it, as
    ``bootstrap_ci`` keeps the threshold fixed.

    >>> y = np.array([0, 1, 2, 2, 1, 0]); probs = np.eye(3)[[0, 1, 2, 1, 1, 0]] * .8 + .2 / 3
    >>> ci = multiclass_bootstrap_ci(y, probs, n_boot=200)
    >>> sorted(ci), ci["accuracy"][0] <= 5 / 6 <= ci["accuracy"][1]
    (['accuracy', 'balanced_accuracy', 'macro_roc_auc'], True)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, probs, pred = _check_multiclass(y, probs, pred)
    rng = np.random.default_rng(seed)
    samples = {k: [] for k in MULTICLASS_CI_METRICS}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        m = _headline(y[idx], probs[idx], pred[idx])
        for k in MULTICLASS_CI_METRICS:
            if not math.isnan(m[k]):
                samples[k].append(m[k])
    tail = (1 - confidence) / 2
    return {k: [float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))]
            if v else [float("nan"), float("nan")] for k, v in samples.items()}
