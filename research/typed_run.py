"""Run folder of a lesion-type model: the Keras model, config, history and evaluation.

``save_run`` assembles the exportable model (raw pixels -> ``[P(malignant), P(types)]``),
predicts validation and test images with it (through the same ``fit_to_input`` path the
runner uses), fits temperature and the operating threshold on validation (all sources), and
writes ``model.keras``, ``config.json``, ``history.csv``, ``metrics.json``,
``predictions.npz``, ``report.md`` and ``description.json`` (``describe``: what the run is, in
the schema of ``train/description.py``, from the run folder's own files, so it also describes a
run trained before it existed). ``loso`` is the leave-one-acquisition-group-out check.

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
from train.description import RunDescription
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
    describe(out).write(out)  # what the run is, for its model card (export/card.py)
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


# The known source folders in words; the first source of a run is the Kaggle-style primary set.
PRIMARY_TEXT = ('Kaggle "Skin Cancer: Malignant vs. Benign" (ISIC Archive; benign/malignant '
                'only, melanoma vs. nevus in practice)')
SOURCE_TEXT = {
    "ham10000-extra": "HAM10000 (`ham10000-extra`: one image per lesion, seven types, four Vienna "
                      "and Queensland acquisition groups)",
    "pad-ufes-phone": "PAD-UFES-20 smartphone photos (`pad-ufes-phone`: six types mapped to the "
                      "nearest HAM10000 type, several photos per lesion, split by patient)"}


def describe(run_dir: Path) -> RunDescription:
    """The run's description (``RUN/description.json``) from its ``config.json``,
    ``metrics.json`` and ``split.csv``: sources, model, views, training, threshold, limits."""
    run = RunDir(run_dir)
    cfg, met = run.config(), run.metrics()
    counts = _source_counts(run, cfg)
    phone = bool(cfg.get("modalities")) or "pad-ufes-phone" in counts
    return RunDescription(
        "skin-lesion classifier (benign vs. malignant)", _model_text(cfg, met),
        _data_text(cfg, met, counts), _views_text(cfg), _training_text(cfg, met),
        "Missing a cancer costs more than a false alarm, so the "
        + ("thresholds favour" if cfg.get("modalities") else "threshold favours") + " sensitivity.",
        _limits_text(len(counts) > 1, phone), _reproduce_text(run, cfg))


def _source_counts(run: RunDir, cfg: dict) -> dict[str, int]:
    """Training images per source (validation included) from ``split.csv``, in the run's
    source order; ``{}`` for a run folder without it."""
    from train.split_file import read_split

    if not run.split_csv.is_file():
        return {}
    split = read_split(run.split_csv)
    found = [r.source for k in ("train", "val") for r in split[k]]
    order = [Path(d).name for d in cfg.get("data_sources", [])]
    return {s: found.count(s) for s in order + sorted(set(found) - set(order)) if s in found}


def _model_text(cfg: dict, met: dict) -> str:
    size, b = cfg["image_size"], cfg.get("backbone", {})
    return (f"Lesion-type head on ImageNet MobileNetV2 (alpha {cfg.get('alpha', 1.0):g}) at "
            f"{size}x{size}, cut at `{b.get('cut', '?')}`"
            + (", then a modality head (dermoscopic or phone photo)" if cfg.get("modalities")
               else "") + f"; {cfg.get('params', 0):,} parameters. P(malignant) is the sum of "
            f"the malignant types' probabilities ({', '.join(cfg.get('malignant_classes', []))}).")


def _views_text(cfg: dict) -> str:
    from research.views import RECIPE_TEXT

    recipe = cfg.get("augment", "dermoscope")
    return (f"{cfg.get('views', '?')} views per training image, their backbone activations "
            f"cached once: view 0 the image itself, the others `{recipe}`-augmented "
            f"(research/views.py: {RECIPE_TEXT.get(recipe, recipe)}).")


def _training_text(cfg: dict, met: dict) -> list[str]:
    # a run written before write_run scored it keeps its best epoch's score
    score = met.get("val_mean_source_auc", met.get("best_val_mean_auc", float("nan")))
    worst = (f", worst source {down(met['val_worst_source_auc'])} (the selection rule)"
             if cfg.get("select") == "worst" and "val_worst_source_auc" in met else "")
    head_on = "the images themselves" if cfg.get("head_views") == 1 else "every view"
    return [f"`python research/train_typed.py`: {cfg.get('head_epochs', '?')} head epochs on "
            f"{head_on} and {cfg.get('top_epochs', '?')} top-block epochs (lr "
            f"{cfg.get('top_lr', 0):g}) on every view, seed {cfg.get('seed', 0)}; every (source, "
            "label) group weighs the same; the epoch kept by the "
            f"{cfg.get('select', 'mean')} per-source validation AUC"
            + ("; the modality head fitted last" if cfg.get("modalities") else "") + ".",
            f"Mean per-source validation AUC {down(score)}{worst}."]


def _data_text(cfg: dict, met: dict, counts: dict[str, int]) -> list[str]:
    """What the run trained on: sources, images per source, how validation and test were drawn."""
    names = [Path(d).name for d in cfg.get("data_sources", [])] or list(counts)
    texts = [PRIMARY_TEXT if i == 0 else SOURCE_TEXT.get(n, f"`{n}`") for i, n in enumerate(names)]
    sources = ", ".join(texts[:-1]) + " and " + texts[-1] if len(texts) > 1 else "".join(texts)
    size = cfg["image_size"]
    per = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    val = ", ".join(f"{k} {r['n']}" for k, r in met["val_report"]["per_source"].items())
    return [f"{trained_on(cfg['data_sources'])}.",
            f"Sources: {sources}" + (f", training images per source (validation included): "
                                     f"{per}" if per else "")
            + f"; the model takes them at {size}x{size}. Validation ({met['n_val']} images: "
            f"{val}) is drawn per source, label and type, whole lesions (phone photos: whole "
            "patients) at a time, and the model never trained on it. Test: "
            f"{met['n_test']} Kaggle test images after removing "
            f"{met['n_test_full'] - met['n_test']} that duplicate training images"
            + (" (the other sources have no test split here; their numbers below are "
               "validation)." if len(names) > 1 else ".")]


def _limits_text(several: bool, phone: bool) -> list[str]:
    confounded = ["The sources are confounded with the label: nearly all melanomas come from "
                  "the Kaggle set and nearly all other types from HAM10000, and the two differ "
                  "in framing and processing. Read the per-source numbers below, not a pooled "
                  "AUC."] if several else []
    modality = ("Phone photos come from one Brazilian clinic's smartphones (most copies already "
                "resized to 300x300): other phones, lighting, distances and webcams are "
                "untested. A Pi camera or browser camera frame without a dermoscope is a "
                "phone-photo-like input; the modality output picks its threshold." if phone else
                "Images are dermoscopic (contact/polarised magnifier), not phone or webcam "
                "photos; camera frames are out of distribution.")
    return [*confounded,
            "Skin-tone distribution is not recorded and is probably mostly light skin; models "
            "trained on such data lose much on dark skin (Daneshjou et al. 2022: AUC 0.72 on "
            "Fitzpatrick I-II vs 0.57 on V-VI). Do not assume this model works on dark skin.",
            modality]


def _reproduce_text(run: RunDir, cfg: dict) -> list[str]:
    """The recipe's commands (the export folder is the Makefile's ``models``)."""
    flags = [f"--image-size {cfg['image_size']}", f"--augment {cfg.get('augment', 'dermoscope')}",
             f"--views {cfg.get('views', 6)}", f"--head-views {cfg.get('head_views', 0)}",
             f"--head-epochs {cfg.get('head_epochs', 40)}",
             f"--top-epochs {cfg.get('top_epochs', 8)}"]
    flags += [f"--top-lr {cfg['top_lr']:g}"] if cfg.get("top_lr", 1e-4) != 1e-4 else []
    cut = cfg.get("backbone", {}).get("cut", "block_12_add")
    flags += [f"--cut {cut}"] if cut != "block_12_add" else []
    flags += ([f"--color-constancy {cfg['color_constancy']}"]
              if cfg.get("color_constancy", "none") != "none" else [])
    flags += [f"--select {cfg['select']}"] if cfg.get("select", "worst") != "worst" else []
    flags += [f"--seed {cfg['seed']}"] if cfg.get("seed", 0) else []
    names = " ".join(Path(d).name for d in cfg.get("data_sources", []))
    return ["make shipped   # the shipped recipe end to end: train (if needed), leave-one-group-"
            "out, export to models/, benchmark, this card",
            f"python research/train_typed.py {' '.join(flags)} --out {run}   # sources: {names}",
            f"python research/evaluate_sources.py --model models/model_int8.tflite --run {run}"
            "   # per source (after the export below)",
            f"python research/describe.py --run {run} --models models   # after the export: the "
            "measured sections (RUN/card/); + --loso LABEL=FILE ... in the Makefile's shipped "
            "target"]
