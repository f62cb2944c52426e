"""Combine trained runs into one ensemble run folder (mean of the members' probabilities).

The result is an ordinary run folder (``model.keras``, ``config.json``,
``train_summary.json``), so ``train/evaluate.py`` and ``export/convert.py`` take it as is.
Members must share the validation split (same seed and validation fraction), or the
ensemble's threshold would be chosen on images some member trained on.

Examples:
    python train/ensemble.py runs/seed_cnn-128 runs/mnv2-0.35-224 --out runs/ensemble
    python train/evaluate.py --run runs/ensemble
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.atomic import atomic_path, atomic_write_text  # noqa: E402
from train.config import TrainConfig  # noqa: E402

class EnsembleError(ValueError):
    """A member run is missing, unreadable or incompatible; the message names it."""


def load_member_configs(runs: list[Path]) -> list[TrainConfig]:
    cfgs = []
    for run in runs:
        for f in ("model.keras", "config.json"):
            if not (run / f).is_file():
                raise EnsembleError(f"{run / f} not found; train that run first or fix the path")
        cfgs.append(TrainConfig.load(run / "config.json"))
    for run, c in zip(runs[1:], cfgs[1:]):
        diff = cfgs[0].split_differences(c)
        if diff:
            raise EnsembleError(
                f"{run}: {', '.join(diff)} differ from {runs[0]}, so its validation split differs; "
                "train every member with the same --split-seed (or --seed) and --val-fraction")
    return cfgs


def make_ensemble(runs: list[Path], out: Path) -> tuple[Path, int]:
    """Build, save and describe the ensemble; returns (model path, parameter count)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from train.ensembling import build_ensemble

    cfgs = load_member_configs(runs)
    members = [keras.models.load_model(r / "model.keras", compile=False) for r in runs]
    model = build_ensemble(members)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.keras"
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    cfg = TrainConfig(data=cfgs[0].data, val_fraction=cfgs[0].val_fraction,
                      exclude_leaked=cfgs[0].exclude_leaked, seed=cfgs[0].seed,
                      split_seed=cfgs[0].val_seed, model="ensemble", image_size=int(model.input_shape[1]),
                      out=str(out), run_id=out.name, members=[str(r) for r in runs])
    cfg.save(out / "config.json")
    summaries = [json.loads((r / "train_summary.json").read_text())
                 if (r / "train_summary.json").is_file() else {} for r in runs]
    summary = {
        "run_id": cfg.run_id, "params": int(model.count_params()),
        "train_seconds": round(sum(s.get("train_seconds", 0.0) for s in summaries), 1),
        "members": [{"run": str(r), "model": c.model, "alpha": c.alpha, "image_size": c.image_size,
                     "best_val_auc": s.get("best_val_auc"), "train_seconds": s.get("train_seconds"),
                     "params": s.get("params")} for r, c, s in zip(runs, cfgs, summaries)],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__}}
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=2))
    return path, summary["params"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="member run folders (model.keras, config.json)")
    p.add_argument("-o", "--out", type=Path, required=True, help="new run folder for the ensemble")
    args = p.parse_args(argv)
    if len(args.runs) < 2:
        print("error: give at least two run folders to combine", file=sys.stderr)
        return 2
    if (args.out / "model.keras").exists():
        print(f"error: {args.out} already holds a model; choose a new --out", file=sys.stderr)
        return 2
    try:
        path, params = make_ensemble(args.runs, args.out)
    except EnsembleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"saved {path} ({len(args.runs)} members, {params:,} parameters)")
    print(f"next: python train/evaluate.py --run {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
