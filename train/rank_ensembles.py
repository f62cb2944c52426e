"""Rank runs and every mix of them (mean of probabilities) on the validation split only.

Each run predicts its validation images once, at its own input size; every non-empty mix is
scored by the exact ROC AUC of its members' mean probability (what ``train/ensemble.py`` builds)
and by the validation specificity at the operating rule's threshold. Mixes within ``--band`` of
the best are marked: the selection rule ships the cheapest of those. The test split is never read.

Example:
    python train/rank_ensembles.py runs/seed_cnn-128-e60 runs/mnv2-0.35-224-s1 runs/mnv2-1.0-224
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.atomic import atomic_write_text  # noqa: E402
from core.helpformat import DefaultsHelp  # noqa: E402
from core.digits import down  # noqa: E402
from train.ensemble_runs import EnsembleError, rank, validation_predictions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (trained with train/train.py)")
    ap.add_argument("-d", "--data", default=None, help="dataset folder (default: the runs')")
    ap.add_argument("--band", type=float, default=0.003,
                    help="mixes this close to the best validation AUC are marked as candidates")
    ap.add_argument("--json", type=Path, default=None, help="also write the ranking as JSON")
    args = ap.parse_args(argv)
    if len(set(args.runs)) != len(args.runs):
        print("error: a run is listed twice; list each run folder once", file=sys.stderr)
        return 2
    from train.data import DatasetNotFound

    try:
        y, probs, params = validation_predictions(args.runs, args.data)
    except (EnsembleError, DatasetNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mixes = rank(y, probs, params, args.band)
    if args.json:  # first: a reader that stops early (| head) must not lose it
        atomic_write_text(args.json, json.dumps([asdict(m) for m in mixes], indent=2))
    print(f"{len(mixes)} mixes of {len(probs)} runs on {len(y)} validation images "
          f"({int(y.sum())} malignant); * = within {args.band} of the best validation AUC")
    print("| | val AUC | val specificity | parameters | runs |\n|---|---|---|---|---|")
    for m in mixes:
        print(f"| {'*' if m.in_band else ''} | {down(m.val_auc)} | {down(m.val_specificity, 3)} | "
              f"{m.params:,} | {' + '.join(m.runs)} |")
    print("Validation only; choose the cheapest marked mix, then build it with train/ensemble.py.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
