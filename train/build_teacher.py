"""Build a teacher from cached encoder features and trained runs; write its soft targets.

Research and education tool, not a medical device. Every source the registry offers joins
(default: skin-lesions and ham10000-extra beside it; the split is train/sources.py's, so the
primary source's validation images are the ones ``train/train.py`` holds out with the same
seed). Each ``--encoders`` entry ``NAME[:SIZE[:VIEWS]]`` is run once per image and view and
cached (train/featcache.py); a linear probe on it, and one on all of them concatenated, become
members, beside every ``--runs`` folder. The teacher is the member mean picked greedily on
validation (mean of the per-source AUCs), or, with ``--min-primary``, the best such mean of
every mix that keeps the primary source's validation AUC at that floor. Writes
``<out>/teacher.json`` (every member's validation and test metrics per source, the choice,
timings) and ``<out>/teacher_targets.csv``
(the soft targets ``train/train.py --teacher <out>`` reads; out of fold for training images).

Example:
    python train/build_teacher.py --encoders mobilenetv2 efficientnet_lite2:260:2 vit_s_focus \\
        --runs runs/ens2-192 --out runs/teacher
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import csv
import io
import os
import time

import numpy as np

from edge.preprocess import COLOR_CONSTANCY
from core.digits import down

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SPLITS = ("train", "val", "test")


def build_parser() -> argparse.ArgumentParser:
    from core.helpformat import DefaultsHelp

    p = argparse.ArgumentParser(prog="python train/build_teacher.py",
                                description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp)
    p.add_argument("--data", nargs="*", default=None,
                   help="source folders, the first is primary; default: skin-lesions and ham10000-extra")
    p.add_argument("--encoders", nargs="*", default=["mobilenetv2", "efficientnet_lite2"],
                   help="NAME[:SIZE[:VIEWS]] (train/encoders.py); views are cached augmented views")
    p.add_argument("--runs", nargs="*", default=[], help="trained run folders as members")
    p.add_argument("--color-constancy", choices=COLOR_CONSTANCY, default="none",
                   help="applied to every image before the --encoders (edge/preprocess.py)")
    p.add_argument("--folds", type=int, default=5, help="folds for out-of-fold probe targets")
    p.add_argument("--max-members", type=int, default=6, help="most members in the mean")
    p.add_argument("--select", choices=("sources", "primary"), default="sources",
                   help="choose members on the mean of per-source validation AUCs, or on the "
                        "primary source's validation AUC alone")
    p.add_argument("--members", nargs="*", default=None,
                   help="choose only among these members (names as in teacher.json, e.g. "
                        "run:seed_cnn-128-e60 probe:efficientnet_lite2@260); default: all")
    p.add_argument("--min-primary", type=float, default=None,
                   help="with --select sources: only mixes whose primary-source validation AUC is "
                        ">= this (e.g. the shipped model's minus 0.003); searches every mix of up "
                        "to --max-members instead of greedy steps")
    p.add_argument("--loso", action="store_true",
                   help="leave-one-acquisition-group-out check of every probe (HAM10000 dataset column)")
    p.add_argument("--reuse", default=None,
                   help="take the members of this teacher folder (its targets file) instead of "
                        "computing them: a new --select in seconds; --runs given beside it join "
                        "as new members (--encoders are not recomputed)")
    p.add_argument("--seed", type=int, default=0, help="split seed (the student's --split-seed)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--out", required=True, help="teacher folder to write")
    return p


def run_member(g: dict, run: str):
    """A trained run's P(malignant) per split (an unreadable file gets NaN)."""
    import keras

    from train.run import RunDir
    from train.teacher import Member
    from train.typed_run import predict_items

    model = keras.models.load_model(RunDir(run).model_keras, compile=False)
    size = int(model.input_shape[1])
    cc = RunDir(run).config().get("color_constancy") or "none"
    ps = {}
    for s in SPLITS:
        out, kept = predict_items(model, g[s], size, cc)
        by_path = dict(zip(kept, out[:, 0]))
        ps[s] = np.array([by_path.get(str(i.path), np.nan) for i in g[s]], np.float64)
    return Member(f"run:{Path(run).name}", ps["train"], ps["val"], ps["test"],
                  {"kind": "run", "train_targets": "in-sample for the run's own training images"})


def probe_member(name: str, feats: dict, g: dict, folds: int, loso: bool = False):
    from train.sources import MALIGNANT_DX
    from train.teacher import Member, class_key, probe

    classes = [class_key(i.label, i.dx, i.source) for i in g["train"]]
    malignant = set(MALIGNANT_DX) | {c for c, i in zip(classes, g["train"]) if not i.dx and i.label}
    keys = [i.lesion or str(i.path) for i in g["train"]]
    t = time.time()
    oof, (pv, pt), c = probe(feats["train"], classes, malignant, keys,
                             [feats["val"], feats["test"]], folds=folds)
    info = {"kind": "probe", "C": c, "views": feats["train"].shape[1], "dim": feats["train"].shape[2],
            "fit_s": round(time.time() - t, 1), "train_targets": f"out of fold ({folds} folds)"}
    print(f"probe {name}: C {c:g}, {info['fit_s']:.0f} s", flush=True)
    if loso:
        from train.teacher import leave_group_out

        t = time.time()
        info["loso"] = leave_group_out(feats, g, malignant, c)
        info["loso_s"] = round(time.time() - t, 1)
        print("  leave-one-group-out AUC: " + ", ".join(
            f"{k} {down(v.get('auc_held_out', float('nan')))}" for k, v in info["loso"].items()), flush=True)
    return Member(f"probe:{name}", oof, pv, pt, info)


def evaluate(member, g: dict) -> dict:
    """Validation and test metrics per source at the member's validation-fitted threshold."""
    from core import metrics as M
    from train.source_eval import split_report
    from train.teacher import source_score
    from train.typed_run import threshold_fields

    y = {s: np.array([i.label for i in g[s]]) for s in ("val", "test")}
    thr = threshold_fields(y["val"], member.val)
    out = {"val_score": source_score(y["val"], member.val, [i.source for i in g["val"]]),
           "threshold": thr["threshold"], "temperature": thr["temperature"]}
    for s in ("val", "test"):
        p = M.apply_temperature(getattr(member, s), thr["temperature"])
        out[s] = split_report(g[s], y[s], p, thr["threshold"])
        out[s]["roc_auc_ci"] = list(M.bootstrap_ci(y[s], p, thr["threshold"], n_boot=500)["roc_auc"])
    return out


def targets_csv(g: dict, members: list, chosen: list[str]) -> str:
    """One row per image of every split: the teacher's P(malignant) and each member's."""
    from train.teacher import mix

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "split", "source", "label", "dx", "teacher", *[m.name for m in members]])
    for s in SPLITS:
        p = mix(members, chosen, s)
        for k, it in enumerate(g[s]):
            w.writerow([str(it.path), s, it.source, it.label, it.dx, f"{p[k]:.6f}",
                        *[f"{getattr(m, s)[k]:.6f}" for m in members]])
    return buf.getvalue()


def check_reuse(args) -> None:
    """``--reuse`` must name a teacher folder with this split (same seed and fraction)."""
    from train.run import RunDir

    if not args.reuse:
        return
    run = RunDir(args.reuse)
    if not (run.targets_csv.is_file() and run.config_json.is_file()):
        raise FileNotFoundError(f"--reuse {run}: no {run.targets_csv.name}; build that teacher first")
    cfg = run.load_config()
    if (cfg.val_seed, cfg.val_fraction) != (args.seed, args.val_fraction):
        raise ValueError(f"--reuse {run}: its split (seed {cfg.val_seed}, val fraction "
                         f"{cfg.val_fraction:g}) differs from --seed {args.seed} --val-fraction "
                         f"{args.val_fraction:g}; use the same")


def reused_members(folder: str, g: dict) -> list:
    """The members of an earlier teacher folder, read back from its targets file."""
    from train.distill import read_targets
    from train.run import RunDir
    from train.teacher import Member

    rows = {r["path"]: r for r in read_targets(Path(folder))}
    info = RunDir(folder).read_json(RunDir(folder).teacher_json).get("members", {})
    names = [k for k in next(iter(rows.values())) if k.startswith(("probe:", "run:"))]
    keep = ("kind", "C", "views", "dim", "fit_s", "train_targets", "loso", "loso_s")
    row = lambda i: rows.get(str(i.path), {})  # noqa: E731  (absent: unreadable before, dropped)
    return [Member(n, *(np.array([float(row(i).get(n, "nan")) for i in g[s]]) for s in SPLITS),
                   {k: v for k, v in info.get(n, {}).items() if k in keep} | {"from": folder})
            for n in names]


def readable_masks(g: dict, bad: list[str], members: list) -> dict:
    """Per split, the images every encoder could read (a bad-file message names the file) and
    every run member scored (an unreadable file gives NaN)."""
    keep = {s: np.array([not any(b.startswith(f"{i.path}:") for b in bad) for i in g[s]], bool)
            for s in SPLITS}
    for m in members:
        for s in SPLITS:
            keep[s] &= np.isfinite(getattr(m, s))
    return keep


def subset(g: dict, feats_all: list, members: list, keep: dict) -> tuple[dict, list, list]:
    """``g``, features and members restricted to ``keep``: a bad file never gets a target."""
    from train.teacher import Member

    g = {**g, **{s: [i for i, k in zip(g[s], keep[s]) if k] for s in SPLITS}}
    feats_all = [{s: f[s][keep[s]] for s in SPLITS} for f in feats_all]
    members = [Member(m.name, *(getattr(m, s)[keep[s]] for s in SPLITS), m.info) for m in members]
    return g, feats_all, members


def choose(members: list, g: dict, how: str, max_members: int, only: list[str] | None = None,
           min_primary: float | None = None) -> tuple[list[str], list[dict]]:
    """Member choice on validation: all sources (their mean AUC) or the primary alone; greedy,
    or exhaustive under a primary-source floor. ``only`` limits the candidates."""
    from train.teacher import Member, select, select_with_floor

    if only is not None:
        missing = sorted(set(only) - {m.name for m in members})
        if missing:
            raise ValueError(f"--members {' '.join(missing)}: no such member; choose from "
                             f"{' '.join(m.name for m in members)}")
        members = [m for m in members if m.name in set(only)]
    y = np.array([i.label for i in g["val"]])
    src = [i.source for i in g["val"]]
    if min_primary is not None:
        if how != "sources":
            raise ValueError("--min-primary goes with --select sources (a floor on the primary "
                             "source while the mean of all sources is maximised)")
        chosen, trace = select_with_floor(members, y, src, Path(g["dirs"][0]).name, min_primary,
                                          max_members)
        if not chosen:
            raise ValueError(f"--min-primary {min_primary:g}: no mix of up to {max_members} "
                             "members reaches it on validation; lower it or add members")
        return chosen, trace
    if how == "primary":
        k = np.array([s == Path(g["dirs"][0]).name for s in src])
        members = [Member(m.name, m.train, m.val[k], m.test) for m in members]
        y, src = y[k], [s for s, kk in zip(src, k) if kk]
    return select(members, y, src, max_members)


def build(args) -> dict:
    from train.encoders import parse_encoder
    from train.featcache import pooled_features
    from train.sources import gather
    from train.teacher import Member, mix

    g, t0 = gather(args.data, args.val_fraction, args.seed), time.time()
    members, feats_all, timings, bad = [], [], {}, []
    if args.reuse:
        args.encoders = []
        members = reused_members(args.reuse, g)
        dup = sorted({f"run:{Path(r).name}" for r in args.runs} & {m.name for m in members})
        if dup:
            raise ValueError(f"--runs {' '.join(dup)}: already a member of --reuse {args.reuse}")
    encoders = [parse_encoder(e) for e in args.encoders]
    for name, size, views in encoders:
        t = time.time()
        feats, b = pooled_features(g, name, size, views, SPLITS, args.color_constancy)
        timings[f"features:{name}"] = round(time.time() - t, 1)
        bad += b
        feats_all.append(feats)
    for run in args.runs:
        t = time.time()
        members.append(run_member(g, run))
        timings[f"predict:{run}"] = round(time.time() - t, 1)
    g, feats_all, members = subset(g, feats_all, members, readable_masks(g, bad, members))
    for (name, size, _), feats in zip(encoders, feats_all):
        cc = "" if args.color_constancy == "none" else f"+{args.color_constancy}"
        members.append(probe_member(f"{name}@{size}{cc}", feats, g, args.folds, args.loso))
    if len(feats_all) > 1:
        v = min(f["train"].shape[1] for f in feats_all)
        cat = {s: np.concatenate([f[s][:, :v] for f in feats_all], axis=2) for s in SPLITS}
        members.append(probe_member("+".join(e[0] for e in encoders), cat, g, args.folds, args.loso))
    chosen, trace = choose(members, g, args.select, args.max_members, args.members,
                           args.min_primary)
    teacher = Member("teacher", *(mix(members, chosen, s) for s in SPLITS), {"members": chosen})
    report = {m.name: {**m.info, **evaluate(m, g)} for m in members + [teacher]}
    timings["total"] = round(time.time() - t0, 1)
    return {"chosen": chosen, "select": args.select, "candidates": args.members,
            "min_primary": args.min_primary, "trace": trace, "members": report,
            "timings_s": timings, "bad_files": bad, "sources": g["dirs"], "_members": members, "_g": g}


def summary_table(res: dict) -> str:
    rows = ["| member | val score | val AUC per source | test AUC (95% CI) | test acc @thr | test sens / spec |",
            "|---|---|---|---|---|---|"]
    for name, m in res["members"].items():
        per = ", ".join(f"{s.split('/')[-1]} {down(r['roc_auc'])}" for s, r in m["val"]["per_source"].items()
                        if "roc_auc" in r)
        o, ci = m["test"]["overall"], m["test"]["roc_auc_ci"]
        rows.append(f"| {name} | {down(m['val_score'])} | {per} | {down(o['roc_auc'])} ({down(ci[0], 3)}-{down(ci[1], 3)}) "
                    f"| {down(o['accuracy'])} | {down(o['sensitivity'])} / {down(o['specificity'])} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from core.atomic import atomic_write_text
    from train.config import TrainConfig
    from train.run import RunDir

    args = build_parser().parse_args(argv)
    try:
        check_reuse(args)
        res = build(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run = RunDir(args.out)
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.targets_csv, targets_csv(res.pop("_g"), res.pop("_members"), res["chosen"]))
    run.write_json(run.teacher_json, res)
    TrainConfig(model="teacher", seed=args.seed, split_seed=args.seed, val_fraction=args.val_fraction,
                members=res["chosen"], out=str(run.path)).save(run.config_json)
    table = summary_table(res)
    atomic_write_text(run.report_md, "# Teacher\n\nResearch and education tool, not a medical device. "
                      f"Trained on: {', '.join(res['sources'])} (train split only).\n\n"
                      f"Chosen: {' + '.join(res['chosen'])}\n\n{table}\n")
    print(table)
    print(f"teacher: {' + '.join(res['chosen'])}; wrote {run.teacher_json} and {run.targets_csv} "
          f"({res['timings_s']['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
