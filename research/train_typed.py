"""Train the lesion-type model on several sources from cached backbone activations.

Research and education tool, not a medical device. Sources: the Kaggle skin-lesions set
(benign/malignant only), HAM10000-extra (seven lesion types) and the pad-ufes-phone photos
(six types mapped to HAM10000's), joined with a lesion- and patient-disjoint validation split
(research/multisource.py); every (source, label) group weighs the same in each epoch. MobileNetV2-1.0
is cut at ``--cut``; its bottom runs once per image and augmented view (research/featcache.py),
the head and then the top blocks train on that cache (research/cached_train.py), keeping the
epoch with the best ``--select`` per-source validation AUC. With more than one modality
in training (dermoscopic, phone), a modality head is fitted last (research/typed_head.py).

Examples:
    python research/train_typed.py --out runs/typed                     # the default sources
    python research/train_typed.py --image-size 160 --augment acquisition --views 6 --head-views 1 \
        --top-epochs 10 --out runs/allsrc-160                          # the shipped recipe
    python research/train_typed.py --views 6 --top-epochs 8 --color-constancy shades_of_gray --out runs/typed-sog
    python research/train_typed.py --loso --top-epochs 0 --out runs/typed-loso   # leave-one-group-out check
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import time

import numpy as np

from core.digits import down
from core.helpformat import program
from research.cached_train import SELECT
from research.views import RECIPES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program("research/train_typed.py"),
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", nargs="*", default=None,
                   help="source folders, the first is primary (its test/ is the headline test); "
                        "default: skin-lesions and ham10000-extra beside it")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--views", type=int, default=6, help="cached views per training image")
    p.add_argument("--color-constancy", default="none", choices=("none", "shades_of_gray"))
    p.add_argument("--cut", default="block_12_add", help="MobileNetV2 layer where the cache is cut")
    p.add_argument("--image-size", type=int, default=224,
                   help="input size (the 224 ImageNet weights serve every size)")
    p.add_argument("--augment", default="dermoscope", choices=RECIPES,
                   help="view recipe of the cached views (research/views.py)")
    p.add_argument("--select", default="worst", choices=tuple(SELECT),
                   help="epoch selection: the worst or the mean per-source validation AUC")
    p.add_argument("--head-epochs", type=int, default=40)
    p.add_argument("--head-views", type=int, default=0,
                   help="views the head phase trains on (the first N; 0: all); the top blocks "
                        "always see every view")
    p.add_argument("--top-epochs", type=int, default=8)
    p.add_argument("--top-lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--loso", action="store_true",
                   help="also train without each HAM10000 acquisition group and test on it")
    p.add_argument("--loso-only", action="store_true",
                   help="only the leave-one-group-out check (head only; writes <out>/loso.json)")
    return p


def _val_tuple(items):
    return np.array([i.label for i in items]), [i.source for i in items]


def _readable(g: dict, split: str, acts: np.ndarray, bad: list[str]):
    """Drop unreadable files (already reported one line each) from ``g[split]`` and ``acts``."""
    if bad:
        keep = [not any(b.startswith(str(i.path)) for b in bad) for i in g[split]]
        g[split] = [i for i, k in zip(g[split], keep) if k]
        acts = acts[np.array(keep)]
    return acts, bad


def _modality_head(top, acts: np.ndarray, items: list, seed: int):
    """P(phone photo) fitted on the final top's pooled features of every cached view, or
    ``None`` when training saw one modality only. (Fitted on the first, un-augmented view
    alone it recognised 55% of the validation phone photos, against 90% with every view:
    docs/experiments.md.)"""
    from research.multisource import MODALITIES
    from research.typed_head import fit_modality_head

    is_phone = np.array([i.modality == MODALITIES[1] for i in items])
    if is_phone.all() or not is_phone.any():
        return None
    from research.cached_train import pooled

    f = pooled(top, acts)
    return fit_modality_head(f.reshape(-1, f.shape[-1]), np.repeat(is_phone, f.shape[1]),
                             seed=seed)


def run(args) -> dict:
    from research.cached_train import pooled, train_head, train_top
    from research.featcache import BackboneSpec, activations, build_backbone
    from research.multisource import gather
    from train.run import RunDir
    from research.typed_head import balanced_weights, type_masks

    t0 = time.time()
    g = gather(args.data, args.val_fraction, args.seed)
    spec = BackboneSpec(size=args.image_size, cut=args.cut, color_constancy=args.color_constancy,
                        augment=args.augment)
    a_train, bad = _readable(g, "train", *activations(g["train"], args.views, spec, args.seed))
    a_val, bad_v = _readable(g, "val", *activations(g["val"], 1, spec, args.seed))
    t_cache = time.time() - t0
    base, _, top = build_backbone(spec)
    f_train, f_val = pooled(top, a_train), pooled(top, a_val)[:, 0]
    if args.loso_only:
        from research.typed_run import loso

        Path(args.out).mkdir(parents=True, exist_ok=True)
        res = loso(g, f_train, f_val, None, args)
        RunDir(args.out).write_json(RunDir(args.out).loso_json, res)
        return {"loso": res}
    masks, weights = type_masks(g["train"]), balanced_weights(g["train"])
    f_head = f_train[:, :args.head_views] if args.head_views > 0 else f_train
    head, res = train_head(f_head, masks, weights, f_val, _val_tuple(g["val"]),
                           args.head_epochs, seed=args.seed, select=args.select)
    print(f"head: best val {args.select} AUC {down(res.best_score)} (epoch {res.best_epoch})",
          flush=True)
    if args.top_epochs:
        train_top(top, head, a_train, masks, weights, a_val, _val_tuple(g["val"]),
                  args.top_epochs, args.top_lr, args.seed, result=res, select=args.select)
    modality = _modality_head(top, a_train, g["train"], args.seed)
    from research.typed_run import save_run

    summary = save_run(Path(args.out), args, g, base, head, res, spec,
                       {"cache_s": t_cache, "total_s": time.time() - t0,
                        "bad_files": bad + bad_v}, modality)
    if args.loso:
        from research.typed_run import loso

        summary["loso"] = loso(g, f_train, f_val, None, args)
        RunDir(args.out).write_json(RunDir(args.out).loso_json, summary["loso"])
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = run(args)
    if args.loso_only:
        print(json.dumps(summary["loso"], indent=2))
        return 0
    print(json.dumps({k: v for k, v in summary.items() if k != "loso"}, indent=2)[:3000])
    print(f"next: python export/convert.py --run {args.out}   # report: {args.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
