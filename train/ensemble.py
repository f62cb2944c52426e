"""Combine trained runs into one ensemble run folder (mean of the members' probabilities).

The result is an ordinary run folder, so ``train/evaluate.py`` and ``export/convert.py`` take
it as is; members must share the validation split (``train/ensemble_runs.py`` checks).

Examples:
    python train/ensemble.py runs/seed_cnn-128 runs/mnv2-0.35-224 --out runs/ensemble
    python train/evaluate.py --run runs/ensemble
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train.ensemble_runs import EnsembleError, make_ensemble  # noqa: E402
from train.run import RunDir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="member run folders (trained with train/train.py)")
    p.add_argument("-o", "--out", type=Path, required=True, help="new run folder for the ensemble")
    args = p.parse_args(argv)
    if len(args.runs) < 2:
        print("error: give at least two run folders to combine", file=sys.stderr)
        return 2
    if RunDir(args.out).has_model():
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
