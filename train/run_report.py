"""Write ``metrics.json``, the evaluation plots and ``report.md`` for one run.

Example:
    >>> write_report(evaluation, out_dir)        # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import core
from core.atomic import atomic_write_text
from core.digits import down
from edge.manifest import TRAINED_ON
from train import plots
from train.run import RunDir

DISCLAIMER = f"**{core.DISCLAIMER}**"
ROWS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity (recall)"),
        ("specificity", "Specificity"), ("precision", "Precision"), ("f1", "F1"),
        ("balanced_accuracy", "Balanced accuracy"), ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"))


def _fmt(m: dict, key: str) -> str:
    lo, hi = m["ci95"][key]
    return f"{down(m[key], 3)} ({down(lo, 3)}-{down(hi, 3)})"


def metrics_table(m: dict) -> str:
    t, h = m["test"], m["test_at_0.5"]
    lines = [f"| metric | at operating threshold {down(m['threshold'], 3)} | at 0.5 |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt(t, k)} | {_fmt(h, k)} |" for k, name in ROWS]
    return "\n".join(lines)


def write_report(ev, out_dir: Path | None = None, n_gradcam: int = 6, model=None) -> Path:
    """Plots, the metrics and the report into ``out_dir`` (default: the run folder)."""
    out = Path(out_dir or ev.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    m, test = ev.metrics, ev.test
    labels = m["labels"]
    from core.metrics import apply_temperature

    p_cal = apply_temperature(test.p, m["temperature"])
    thr = m["threshold"]
    plots.plot_roc(test.y, p_cal, out / "roc.png", thr)
    plots.plot_pr(test.y, p_cal, out / "pr.png")
    plots.plot_confusion(test.y, p_cal, thr, labels, out / "confusion.png")
    plots.plot_reliability(test.y, test.p, p_cal, out / "reliability.png")
    plots.plot_samples(test.x, test.y, p_cal, thr, labels, out / "samples.png")
    figs = ["roc", "pr", "confusion", "reliability", "samples"]
    if model is not None and n_gradcam:
        from train.gradcam import gradcam

        idx = np.r_[np.flatnonzero(test.y == 1)[: n_gradcam // 2],
                    np.flatnonzero(test.y == 0)[: n_gradcam - n_gradcam // 2]].astype(int)
        heat = gradcam(model, test.x[idx])
        plots.plot_gradcam(test.x[idx], heat, test.y[idx], p_cal[idx], labels, out / "gradcam.png")
        figs.append("gradcam")
    RunDir(out).write_json(RunDir(out).metrics_json, m)
    c, cal, full = m["test"], m["calibration"], m["test_full"]
    md = [
        f"# Evaluation report: {m['run_id']} ({m['model']}, {m['image_size']} px)", "",
        DISCLAIMER, "",
        f"Trained on: {TRAINED_ON}.", "",
        f"Test split: {m['n_test']} images ({m['n_test_full'] - m['n_test']} images that leak "
        f"from train excluded). Validation: {m['n_val']} images. 95% CIs: percentile bootstrap "
        "over test images (1000 resamples).", "",
        f"Operating threshold **{down(thr)}**: {m['threshold_rule']}.", "",
        metrics_table(m), "",
        f"Confusion at the operating threshold: TP {c['tp']}, FN {c['fn']}, TN {c['tn']}, "
        f"FP {c['fp']}.", "",
        f"Full 660-image test split (leaks included), same threshold: accuracy "
        f"{down(full['accuracy'], 3)}, ROC AUC {down(full['roc_auc'], 3)}, sensitivity "
        f"{down(full['sensitivity'], 3)}, specificity {down(full['specificity'], 3)}.", "",
        f"Calibration: temperature T = {down(m['temperature'], 3)} fitted on validation; test ECE "
        f"{down(cal['ece_raw'])} raw -> {down(cal['ece_calibrated'])} scaled (10 bins).", "",
        *[f"![{f}]({f}.png)" for f in figs], "",
        "Reproduce: `python train/evaluate.py --run " + str(ev.run_dir) + "`", "",
    ]
    return atomic_write_text(RunDir(out).report_md, "\n".join(md))
