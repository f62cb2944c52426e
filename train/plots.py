"""Matplotlib figures for training and evaluation (Agg backend, PNG files).

Example:
    >>> plot_history("runs/demo/history.csv", "runs/demo/curves.png")   # doctest: +SKIP
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.atomic import atomic_path  # noqa: E402
from core import metrics as M  # noqa: E402
from core.digits import down, pct  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(history_csv: Path, out: Path) -> Path:
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    ep = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("loss", "auc", "acc"), ("loss", "ROC AUC", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            vals = [float(r.get(prefix + key) or "nan") for r in rows]
            ax.plot(ep, vals, style, label=("validation" if prefix else "train"))
        ax.set_title(title), ax.set_xlabel("epoch"), ax.legend()
    return _save(fig, out)


def plot_roc(y, p, out: Path, threshold: float | None = None) -> Path:
    fpr, tpr, thr = M.roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUC {down(M.roc_auc(y, p), 3)}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if threshold is not None:
        m = M.binary_metrics(y, p, threshold)
        ax.plot(1 - m["specificity"], m["sensitivity"], "o", label=f"threshold {down(threshold, 3)}")
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity"), ax.set_title("ROC")
    ax.legend(loc="lower right")
    return _save(fig, out)


def plot_pr(y, p, out: Path) -> Path:
    prec, rec, _ = M.pr_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.step(rec, prec, where="post", label=f"AP {down(M.average_precision(y, p), 3)}")
    ax.axhline(np.mean(y), ls=":", color="grey", label="prevalence")
    ax.set_xlabel("recall (sensitivity)"), ax.set_ylabel("precision"), ax.set_title("Precision-recall")
    ax.legend(loc="lower left")
    return _save(fig, out)


def plot_confusion(y, p, threshold: float, labels, out: Path) -> Path:
    c = M.confusion(y, np.asarray(p) >= threshold)
    mat = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(mat, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(mat[i, j]), ha="center", va="center",
                    color="white" if mat[i, j] > mat.max() / 2 else "black", fontsize=13)
    ax.set_xticks([0, 1], [f"pred {labels[0]}", f"pred {labels[1]}"])
    ax.set_yticks([0, 1], [f"true {labels[0]}", f"true {labels[1]}"])
    ax.set_title(f"Confusion matrix @ {down(threshold, 3)}")
    return _save(fig, out)


def plot_reliability(y, p_raw, p_cal, out: Path, bins: int = 10) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    for p, name in ((p_raw, "raw"), (p_cal, "temperature-scaled")):
        _, obs, conf, cnt = M.reliability_bins(y, p, bins)
        ok = cnt > 0
        ax.plot(conf[ok], obs[ok], "o-",
                label=f"{name} (ECE {down(M.expected_calibration_error(y, p, bins), 3)})")
    ax.set_xlabel("predicted P(malignant)"), ax.set_ylabel("observed fraction malignant")
    ax.set_title("Reliability"), ax.legend(loc="upper left")
    return _save(fig, out)


def plot_samples(images, y, p, threshold: float, labels, out: Path, n: int = 16) -> Path:
    """Grid of test images: half correct, half wrong (when available), with probabilities."""
    pred = (np.asarray(p) >= threshold).astype(int)
    right, wrong = np.flatnonzero(pred == y), np.flatnonzero(pred != y)
    rng = np.random.default_rng(0)
    k_wrong = min(len(wrong), n // 2)
    idx = np.r_[rng.choice(wrong, k_wrong, replace=False) if k_wrong else [],
                rng.choice(right, min(len(right), n - k_wrong), replace=False)].astype(int)
    cols = 4
    rows = max(1, int(np.ceil(len(idx) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.9))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), idx):
        ax.imshow(images[i])
        ok = pred[i] == y[i]
        ax.set_title(f"true {labels[y[i]]}\npred {labels[pred[i]]} p={p[i]:.2f}", fontsize=8,
                     color="green" if ok else "red")
    fig.suptitle("Sample test predictions (green correct, red wrong)")
    return _save(fig, out)


def plot_gradcam(images, heatmaps, y, p, labels, out: Path) -> Path:
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(n * 2.4, 5.2), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i]), axes[0, i].axis("off")
        axes[0, i].set_title(f"true {labels[y[i]]}\np={p[i]:.2f}", fontsize=8)
        axes[1, i].imshow(images[i])
        axes[1, i].imshow(heatmaps[i], cmap="jet", alpha=0.45), axes[1, i].axis("off")
    fig.suptitle("Grad-CAM: regions that raised P(malignant)")
    return _save(fig, out)


def plot_confusion_matrix(matrix, labels, out: Path, normalize: bool = True) -> Path:
    """C x C confusion matrix (rows true, columns predicted) as a PNG, for 2..20 classes.

    Cells show the count and, with ``normalize``, the row share (recall on the diagonal), which
    then also sets the colour so small classes stay readable. Figure and font sizes scale with
    the class count; long or many labels are rotated.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "cm.png"
    >>> plot_confusion_matrix([[5, 1], [2, 7]], ["benign", "malignant"], out).exists()
    True
    """
    mat = np.asarray(matrix)
    labels = [str(label) for label in labels]
    n = len(labels)
    if mat.ndim != 2 or mat.shape != (n, n) or n == 0:
        raise ValueError(f"need a {n} x {n} matrix for {n} labels, got shape {mat.shape}")
    support = mat.sum(axis=1, keepdims=True)
    share = np.divide(mat, support, out=np.zeros(mat.shape, float), where=support > 0)
    shown = share if normalize else mat.astype(float)
    side = 2.8 + 0.55 * n
    cell_font = float(np.clip(15 - 0.4 * n, 7, 13))
    tick_font = float(np.clip(12.5 - 0.2 * n, 8, 11))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    try:
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, mat.max()))
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("share of true class" if normalize else "images", fontsize=tick_font)
        cbar.ax.tick_params(labelsize=tick_font)
        limit = (1 if normalize else max(1, mat.max())) / 2
        for i in range(n):
            for j in range(n):
                text = str(mat[i, j])
                if normalize and support[i, 0]:
                    text += f"\n{pct(share[i, j], 0)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_font,
                        linespacing=1.1, color="white" if shown[i, j] > limit else "black")
        rotate = n > 6 or max(len(s) for s in labels) > 10
        ax.set_xticks(range(n), labels, fontsize=tick_font, rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_yticks(range(n), labels, fontsize=tick_font)
        ax.set_xlabel("predicted", fontsize=tick_font + 1)
        ax.set_ylabel("true", fontsize=tick_font + 1)
        ax.set_title("Confusion matrix" + (" (count, row share)" if normalize else " (count)"))
        return _save(fig, out)
    finally:
        plt.close(fig)
