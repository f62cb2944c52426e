"""Run folder of a lesion-type model: the Keras model, config, history and evaluation.

``save_run`` assembles the exportable model (raw pixels -> ``[P(malignant), P(types)]``),
predicts validation and test images with it (through the same ``fit_to_input`` path the
runner uses), fits temperature and the operating threshold on validation (all sources), and
writes ``model.keras``, ``config.json``, ``history.csv``, ``metrics.json``,
``predictions.npz`` and ``report.md``. ``loso`` is the leave-one-acquisition-group-out check.

Example:
    >>> sorted(threshold_fields(np.array([0, 1, 1, 0]), np.array([.2, .9, .7, .1])))[:3]
    ['target_sensitivity', 'temperature', 'threshold']
"""
from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core import DISCLAIMER
from core.atomic import atomic_write_text
from core import metrics as M
from core.digits import down, pct
from edge.manifest import trained_on
from train.data import list_samples
from train.run import RunDir
from research.source_eval import split_report, table
from research.multisource import DX_CLASSES, DX_NAMES, MALIGNANT_DX

TARGET, CONFIDENCE = 0.95, 0.95
# target sensitivity per modality (the Wilson lower bound at CONFIDENCE must reach it): phone
# photos get 0.85, the project's bar for them, since ~60 validation cancers cannot show 0.95
MODALITY_TARGETS = {"dermoscopic": 0.95, "phone": 0.85}
MODALITY_INDEX = 8  # output index of P(phone) in a typed model with a modality head


def threshold_fields(y: np.ndarray, p: np.ndarray) -> dict:
    """Temperature and the Wilson-bound threshold, fitted on validation outputs ``p``."""
    t = M.fit_temperature(y, p)
    thr = M.threshold_for_sensitivity(y, M.apply_temperature(p, t), TARGET, CONFIDENCE)
    rule = (f"{M.describe_threshold_rule(TARGET, CONFIDENCE)} over every validation source "
            f"(on temperature-scaled probability, T={down(t, 3)})")
    return {"temperature": t, "threshold": thr, "threshold_rule": rule,
            "target_sensitivity": TARGET, "threshold_confidence": CONFIDENCE}


def modality_fields(y: np.ndarray, p_cal: np.ndarray, modality: list[str],
                    temperature: float) -> dict:
    """One threshold per modality, each by the Wilson rule on that modality's validation
    images (``p_cal``: temperature-scaled P(malignant); ``modality``: each image's own).

    >>> f = modality_fields(np.array([0, 1, 1, 0]), np.array([.2, .9, .7, .1]),
    ...                     ["phone", "phone", "dermoscopic", "dermoscopic"], 1.0)
    >>> f["modality_thresholds"]
    {'dermoscopic': 0.7, 'phone': 0.9}
    """
    mod, thr, rules = np.asarray(modality), {}, {}
    for m in sorted(set(modality)):
        k = mod == m
        target = MODALITY_TARGETS.get(m, TARGET)
        thr[m] = float(M.threshold_for_sensitivity(y[k], p_cal[k], target, CONFIDENCE))
        rules[m] = (f"{M.describe_threshold_rule(target, CONFIDENCE)} over the {int(k.sum())} "
                    f"{m} validation images (temperature-scaled probability, "
                    f"T={down(temperature, 3)})")
    return {"modality_thresholds": thr, "modality_threshold_rules": rules,
            "modality_targets": {m: MODALITY_TARGETS.get(m, TARGET) for m in thr}}


def predicted_modality(out: np.ndarray, index: int | None) -> list[str] | None:
    """``phone`` where the output's P(phone) >= 0.5 (the runner's rule), else ``dermoscopic``."""
    from research.multisource import MODALITIES

    if index is None:
        return None
    return [MODALITIES[int(v >= 0.5)] for v in out[:, index]]


def predict_items(model, items, size: int, cc: str) -> tuple[np.ndarray, list[str]]:
    """Output vectors for ``items`` through ``fit_to_input`` (unreadable files dropped)."""
    from train.data import Sample, load_arrays, readable

    samples = [Sample(i.path, i.label) for i in items]
    x, _, bad = load_arrays(samples, size, verbose=False, color_constancy=cc)
    keep = {str(s.path) for s in readable(samples, bad)}
    return model.predict(x.astype("float32"), batch_size=64, verbose=0), \
        [str(i.path) for i in items if str(i.path) in keep]


def image_thresholds(out: np.ndarray, fields: dict, index: int | None) -> np.ndarray:
    """Each image's threshold: its predicted modality's, or the one threshold."""
    mods = predicted_modality(out, index)
    if mods is None or "modality_thresholds" not in fields:
        return np.full(len(out), fields["threshold"])
    return np.array([fields["modality_thresholds"].get(m, fields["threshold"]) for m in mods])


def _split_report(items, out, thr_fields, index: int | None = None) -> dict:
    keep = {str(i.path): i for i in items}
    its = [keep[f] for f in out[1]]
    p = M.apply_temperature(out[0][:, 0], thr_fields["temperature"])
    types = [DX_CLASSES[k] for k in out[0][:, 1:1 + len(DX_CLASSES)].argmax(1)]
    return split_report(its, np.array([i.label for i in its]), p,
                        image_thresholds(out[0], thr_fields, index), types,
                        predicted_modality(out[0], index))


def save_run(out: Path, args, g: dict, base, head, res, spec, extra: dict,
             modality=None) -> dict:
    """Assemble the exportable typed model from backbone and head (and modality head), save
    and evaluate it."""
    from research.multisource import MODALITIES
    from research.typed_head import full_model

    model = full_model(base, head, spec.size, modality=modality)
    cfg = {"model": "typed_mobilenetv2", "alpha": spec.alpha, "views": args.views,
           "backbone": asdict(spec), "head_epochs": args.head_epochs,
           "top_epochs": args.top_epochs, "top_lr": args.top_lr,
           "augment": spec.augment, "select": getattr(args, "select", "mean"),
           "head_views": getattr(args, "head_views", 0)}
    if modality is not None:
        cfg.update({"modalities": list(MODALITIES), "modality_index": MODALITY_INDEX})
    metrics = write_run(out, model, g, spec.size, spec.color_constancy, cfg, args.seed,
                        args.val_fraction, res.history)
    metrics.update({"best_epoch": res.best_epoch, "best_val_mean_auc": res.best_score,
                    "seconds": {**res.seconds,
                                **{k: v for k, v in extra.items() if k != "bad_files"}}})
    RunDir(out).write_json(RunDir(out).metrics_json, metrics)
    return metrics


def write_run(out: Path, model, g: dict, size: int, cc: str, cfg: dict, seed: int = 0,
              val_fraction: float = 0.15, history: list[dict] | None = None) -> dict:
    """Save ``model`` as a run folder and evaluate it on every source's validation images
    (temperature, threshold) and on the primary test split (once)."""
    from train.split_file import rows_of, write_split

    run = RunDir(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(run.model_keras)
    write_split(run.split_csv, rows_of(g))  # what export calibrates, fits and thresholds on
    val = predict_items(model, g["val"], size, cc)
    test = predict_items(model, g["test"], size, cc)
    val_items = [i for i in g["val"] if str(i.path) in set(val[1])]
    y_val = np.array([i.label for i in val_items])
    fields = threshold_fields(y_val, val[0][:, 0])
    index = cfg.get("modality_index")
    if index is not None:
        fields.update(modality_fields(y_val, M.apply_temperature(val[0][:, 0],
                                                                 fields["temperature"]),
                                      [i.modality for i in val_items], fields["temperature"]))
        # the one threshold (runners without modality): the primary source's modality's
        fields["threshold"] = fields["modality_thresholds"][g["test"][0].modality]
        fields["threshold_rule"] = fields["modality_threshold_rules"][g["test"][0].modality]
    rep_val = _split_report(g["val"], val, fields, index)
    rep_test = _split_report(g["test"], test, fields, index)
    yt = np.array([i.label for i in g["test"] if str(i.path) in set(test[1])])
    pt = M.apply_temperature(test[0][:, 0], fields["temperature"])
    thr_t = image_thresholds(test[0], fields, index)
    test_m = M.binary_metrics(yt, pt, thr_t)
    test_m["ci95"] = M.bootstrap_ci(yt, pt, thr_t, 1000, seed)
    n_test_full = len(list_samples(Path(g["dirs"][0]), "test", exclude_leaked=False))
    calibration = {"ece_raw": M.expected_calibration_error(yt, test[0][:, 0]),
                   "ece_calibrated": M.expected_calibration_error(yt, pt)}
    cfg = {"image_size": size, "val_fraction": val_fraction, "seed": seed, "split_seed": -1,
           "exclude_leaked": True, "run_id": out.name, "data": g["dirs"][0],
           "data_sources": g["dirs"], "sources": sorted({i.source for i in g["train"]}),
           "color_constancy": cc, "classes": list(DX_CLASSES), "class_names": DX_NAMES,
           "malignant_classes": list(MALIGNANT_DX), "params": int(model.count_params()), **cfg}
    run.write_json(run.config_json, cfg)
    metrics = {**fields, "run_id": out.name, "model": cfg["model"], "image_size": size,
               "n_val": rep_val["n"], "n_test": int(len(yt)), "n_test_full": n_test_full,
               "calibration": calibration, "test": test_m,
               "val": rep_val["overall"], "val_report": rep_val, "test_report": rep_test,
               "val_mean_source_auc": float(np.mean([r["roc_auc"] for r in
                                                     rep_val["per_source"].values()
                                                     if "roc_auc" in r])),
               "val_worst_source_auc": float(np.min([r["roc_auc"] for r in
                                                    rep_val["per_source"].values()
                                                    if "roc_auc" in r])),
               "labels": ["benign", "malignant"]}
    run.write_json(run.metrics_json, metrics)
    np.savez(run.predictions_npz, val=val[0], val_files=val[1], test=test[0],
             test_files=test[1])
    _write_history(run.history_csv, history or [])
    atomic_write_text(run.report_md, report_md(metrics, trained_on(cfg["data_sources"])))
    return metrics


def _write_history(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for r in rows for k in r}) or ["epoch"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)


def report_md(m: dict, trained: str) -> str:
    """Per-source and per-type tables of a run, with the disclaimer and ``trained`` (what the
    run was trained on, ``edge.manifest.trained_on``)."""
    lines = [f"# {m['run_id']}: lesion-type model", "",
             f"**{DISCLAIMER}**", "", f"Trained on: {trained}.", "",
             f"Operating threshold {down(m['threshold'])}: {m['threshold_rule']}.", ""]
    for mod, thr in m.get("modality_thresholds", {}).items():
        lines += [f"- {mod} photos (predicted modality): threshold {down(thr)}: "
                  f"{m['modality_threshold_rules'][mod]}."]
    lines += [""] if m.get("modality_thresholds") else []
    cols = ("n", "n_malignant", "roc_auc", "sensitivity", "specificity")
    for split in ("val", "test"):
        r = m[f"{split}_report"]
        lines += [f"## {split} (n={r['n']}), melanoma vs nevus AUC: {r['mel_vs_nv_auc']}", "",
                  table(r["per_source"], cols), ""]
        for key in ("per_modality", "per_fitzpatrick"):
            if r.get(key):
                lines += [f"{key.replace('_', ' ')}:", "", table(r[key], cols), ""]
        if r.get("modality_accuracy"):
            lines += ["modality output right: " + ", ".join(
                f"{k} {pct(v)}" for k, v in r["modality_accuracy"].items()), ""]
        if r["per_type"]:
            lines += [table(r["per_type"], ("n", "malignant", "called_malignant",
                                            "type_accuracy")), ""]
    return "\n".join(lines)


def loso(g: dict, f_train: np.ndarray, f_val: np.ndarray, f_test: np.ndarray, args) -> dict:
    """Head-only leave-one-group-out: for each HAM10000 acquisition group, train the head
    without any of that group's images and test on all of them (train and validation
    images, first view); beside it, the same images scored by heads that saw the group
    (its validation images only, so none of them was trained on)."""
    from research.cached_train import train_head
    from research.typed_head import MALIGNANT_MASK, balanced_weights, type_masks

    items = g["train"] + g["val"]
    feats = np.concatenate([f_train[:, 0], f_val])
    y = np.array([i.label for i in items])
    groups = sorted({i.group for i in items if i.group})
    n_tr, out = len(g["train"]), {}
    y_val, src_val = y[n_tr:], [i.source for i in g["val"]]
    full, _ = train_head(f_train, type_masks(g["train"]), balanced_weights(g["train"]),
                         f_val, (y_val, src_val), args.head_epochs, seed=args.seed)
    for grp in groups:
        held = np.array([i.group == grp for i in items])
        tr = ~held[:n_tr]
        vk = ~held[n_tr:]
        head, _ = train_head(f_train[tr], type_masks([i for i, k in zip(g["train"], tr) if k]),
                             balanced_weights([i for i, k in zip(g["train"], tr) if k]),
                             f_val[vk], (y_val[vk], [s for s, k in zip(src_val, vk) if k]),
                             args.head_epochs, seed=args.seed)
        p = _p(head, feats[held], MALIGNANT_MASK)
        row = {"n": int(held.sum()), "n_malignant": int(y[held].sum())}
        hv = held[n_tr:]
        if len(set(y[held].tolist())) == 2:
            row["auc_held_out"] = float(M.roc_auc(y[held], p))
        if len(set(y_val[hv].tolist())) == 2:  # same group's validation images, both heads
            row["auc_val_held_out"] = float(M.roc_auc(y_val[hv], _p(head, f_val[hv], MALIGNANT_MASK)))
            row["auc_val_seen"] = float(M.roc_auc(y_val[hv], _p(full, f_val[hv], MALIGNANT_MASK)))
        out[grp] = row
    return out


def _p(head, feats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return head[1](head[0](feats, training=False)).numpy() @ mask
