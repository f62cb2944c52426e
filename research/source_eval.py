"""Where a model fails: metrics per source and per lesion type, at the operating threshold.

For each source: n, ROC AUC of P(malignant), sensitivity and specificity at the threshold.
For each ``dx``: n and the share called malignant (for a malignant type that is its
sensitivity, for a benign type its false-positive rate), plus type accuracy where known.

Example:
    >>> rows = per_type(np.array([1, 0, 0]), np.array([.9, .8, .1]), ["bcc", "bkl", "bkl"], 0.5)
    >>> rows["bkl"]["called_malignant"], rows["bcc"]["called_malignant"]
    (0.5, 1.0)
"""
from __future__ import annotations

import numpy as np

from core import metrics as M
from core.digits import down, pct


def per_source(y: np.ndarray, p: np.ndarray, sources: list[str], threshold) -> dict:
    """Per source (any grouping): n, ROC AUC, sensitivity and specificity at ``threshold``
    (one value, or one per image)."""
    src, out = np.asarray(sources), {}
    thr = np.broadcast_to(np.asarray(threshold, float), np.shape(y))
    for s in sorted(set(sources)):
        k = src == s
        yk, pk = y[k], p[k]
        row = {"n": int(k.sum()), "n_malignant": int(yk.sum())}
        if len(set(yk.tolist())) == 2:
            row["roc_auc"] = float(M.roc_auc(yk, pk))
        pred = pk >= thr[k]
        if yk.sum():
            row["sensitivity"] = float(pred[yk == 1].mean())
        if (yk == 0).sum():
            row["specificity"] = float((~pred[yk == 0]).mean())
        out[s] = row
    return out


def per_type(y: np.ndarray, p: np.ndarray, dx: list[str], threshold,
             type_pred: list[str] | None = None) -> dict:
    d, out = np.asarray(dx), {}
    thr = np.broadcast_to(np.asarray(threshold, float), np.shape(y))
    for t in sorted(set(dx) - {""}):
        k = d == t
        row = {"n": int(k.sum()), "malignant": bool(y[k].max()) if k.any() else False,
               "called_malignant": float((p[k] >= thr[k]).mean())}
        if type_pred is not None:
            row["type_accuracy"] = float(np.mean(np.asarray(type_pred)[k] == t))
        out[t] = row
    return out


def types_without_dx(y: np.ndarray, dx: list[str], sources: list[str],
                     types: list[str]) -> dict:
    """For images without a ``dx`` (a benign/malignant-only source): per source and label, the
    share of each most likely type, most frequent first. Shows what the type output says on
    such a source (e.g. whether its malignant images, melanomas in practice, come out as "mel").

    >>> types_without_dx(np.array([1, 1, 0, 1]), ["", "", "", "bcc"], ["s"] * 4,
    ...                  ["mel", "nv", "nv", "bcc"])
    {'s': {'benign': {'nv': 1.0}, 'malignant': {'mel': 0.5, 'nv': 0.5}}}
    """
    d, src, t = np.asarray(dx), np.asarray(sources), np.asarray(types)
    out: dict = {}
    for s in sorted(set(src[d == ""].tolist())):
        for lab, name in ((0, "benign"), (1, "malignant")):
            k = (src == s) & (d == "") & (y == lab)
            if k.any():
                names, counts = np.unique(t[k], return_counts=True)
                order = sorted(zip(names.tolist(), counts.tolist()), key=lambda nc: (-nc[1], nc[0]))
                out.setdefault(s, {})[name] = {n: c / int(k.sum()) for n, c in order}
    return out


def at_sensitivity(y: np.ndarray, p: np.ndarray, dx: list[str], target: float = 0.90) -> dict:
    """The operating point one source would need for ``target`` sensitivity on its own images:
    the highest threshold that calls at least that share of its malignant images malignant,
    its specificity, and the share of each lesion type called malignant there. A diagnostic
    (is a type's false-positive rate the ranking or the shared threshold?), never an
    operating rule: the runner keeps the manifest's one threshold.

    >>> y, p = np.array([1, 1, 0, 0]), np.array([.9, .6, .7, .1])
    >>> r = at_sensitivity(y, p, ["bcc", "mel", "bkl", "nv"], 0.5)
    >>> r["threshold"], r["specificity"], r["called_malignant"]["bkl"]
    (0.9, 1.0, 0.0)
    """
    thr = M.threshold_for_sensitivity(y, p, target)  # the point estimate, no Wilson bound
    pred, d = p >= thr, np.asarray(dx)
    return {"target_sensitivity": target, "threshold": thr,
            "sensitivity": float(pred[y == 1].mean()), "specificity": float((~pred[y == 0]).mean()),
            "called_malignant": {t: float(pred[d == t].mean()) for t in sorted(set(dx) - {""})}}


def mel_vs_nv_auc(y: np.ndarray, p: np.ndarray, dx: list[str]) -> float | None:
    d = np.asarray(dx)
    k = (d == "mel") | (d == "nv")
    return float(M.roc_auc(y[k], p[k])) if len(set(y[k].tolist())) == 2 else None


def modality_accuracy(true: list[str], predicted: list[str]) -> dict[str, float]:
    """Per true modality, the share of images whose predicted modality is right.

    >>> modality_accuracy(["phone", "phone", "dermoscopic"], ["phone", "dermoscopic", "dermoscopic"])
    {'dermoscopic': 1.0, 'phone': 0.5}
    """
    t, q = np.asarray(true), np.asarray(predicted)
    return {m: float(np.mean(q[t == m] == m)) for m in sorted(set(true))}


def split_report(items: list, y: np.ndarray, p: np.ndarray, threshold,
                 types: list[str] | None = None, modality: list[str] | None = None) -> dict:
    """One split's report: overall, per source, per acquisition group, per type, mel-vs-nv, and
    per source the operating point its own sensitivity 0.90 would need (``at_sensitivity``).

    ``items`` (``research.multisource.Item``) give source, group, ``dx``, modality and Fitzpatrick
    type; ``p`` is the calibrated P(malignant), ``threshold`` one value or one per image (its
    predicted modality's), ``types`` the most likely type per image (``None`` without a type
    output), ``modality`` the predicted modality per image (``None`` without that output).
    """
    dx, groups = [i.dx for i in items], [i.group for i in items]
    src = np.array([i.source for i in items])
    own = {s: at_sensitivity(y[src == s], p[src == s], [d for d, k in zip(dx, src == s) if k])
           for s in sorted(set(src.tolist())) if 0 < y[src == s].sum() < (src == s).sum()}
    true_mod = [i.modality for i in items]
    fitz = np.array([f"{i.source} type {i.fitzpatrick}" if i.fitzpatrick else "" for i in items])
    thr = np.broadcast_to(np.asarray(threshold, float), np.shape(y))
    extra = {}
    if modality is not None:
        extra = {"per_modality": per_source(y, p, true_mod, thr),
                 "modality_accuracy": modality_accuracy(true_mod, modality)}
    if fitz.any():
        k = fitz != ""
        extra["per_fitzpatrick"] = per_source(y[k], p[k], list(fitz[k]), thr[k])
    return {"n": len(y), "overall": M.binary_metrics(y, p, threshold), **extra,
            "at_sensitivity_0.90": own,
            "per_source": per_source(y, p, [i.source for i in items], threshold),
            "per_group": per_source(y, p, groups, threshold) if any(groups) else {},
            "per_type": per_type(y, p, dx, threshold, types),
            "types_without_dx": (types_without_dx(y, dx, list(src), types)
                                 if types is not None else {}),
            "mel_vs_nv_auc": mel_vs_nv_auc(y, p, dx)}


def types_line(name: str, by_label: dict) -> str:
    """One sentence on ``types_without_dx``'s result for one source.

    >>> types_line("s", {"malignant": {"mel": 0.5, "nv": 0.5}})
    'Most likely type on s images without a lesion type: malignant: mel 50.00%, nv 50.00%.'
    """
    parts = ["{}: {}".format(lab, ", ".join(f"{t} {pct(v)}" for t, v in shares.items()))
             for lab, shares in by_label.items()]
    return f"Most likely type on {name} images without a lesion type: {'; '.join(parts)}."


def table(rows: dict, cols: tuple[str, ...]) -> str:
    """Markdown table of ``rows`` (name -> dict) with ``cols``."""
    head = "| | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    fmt = (lambda v: f"{down(v)}" if isinstance(v, float) else str(v))
    return head + "".join(f"| {name} | " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |\n"
                          for name, r in rows.items())
