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
import itertools
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from core.atomic import atomic_write_text  # noqa: E402
from core.helpformat import DefaultsHelp  # noqa: E402
from core import metrics as M  # noqa: E402
from train.ensemble import EnsembleError, load_member_configs  # noqa: E402


@dataclass
class Mix:
    """One candidate: its member runs and how it does on validation."""

    runs: list[str]
    params: int
    val_auc: float
    val_specificity: float  # at the operating rule's threshold
    in_band: bool = False


def validation_predictions(runs: list[Path], data: str | None = None):
    """(labels, {run: P(malignant)}) on the runs' shared validation split."""
    import keras

    from train.data import list_samples, load_arrays, resolve_data_dir, split_train_val
    from train.evaluation import predict

    cfgs = load_member_configs(runs)  # refuses runs whose validation splits differ
    data_dir = resolve_data_dir(data or cfgs[0].data or None)
    _, val = split_train_val(list_samples(data_dir, "train"), cfgs[0].val_fraction,
                             cfgs[0].val_seed)
    y, probs, params = None, {}, {}
    for run in runs:
        model = keras.models.load_model(run / "model.keras", compile=False)
        x, y_run, _ = load_arrays(val, int(model.input_shape[1]), verbose=False)
        if y is not None and not np.array_equal(y, y_run):
            raise EnsembleError(f"{run}: its validation images differ from {runs[0]}'s")
        y, probs[str(run)], params[str(run)] = y_run, predict(model, x), model.count_params()
    return y, probs, params


def rank(y: np.ndarray, probs: dict[str, np.ndarray], params: dict[str, int], band: float = 0.003,
         target: float = 0.95, confidence: float = 0.95) -> list[Mix]:
    """Every non-empty mix, best validation AUC first; ``in_band``: within ``band`` of the best.

        >>> y = np.array([0, 0, 1, 1]); p = {"a": np.array([.1, .6, .4, .9]), "b": np.array([.2, .1, .8, .7])}
        >>> [(m.runs, round(m.val_auc, 2)) for m in rank(y, p, {"a": 1, "b": 1})][:2]
        [(['b'], 1.0), (['a', 'b'], 1.0)]
    """
    mixes = []
    for k in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, k):
            p = np.mean([probs[r] for r in combo], axis=0)
            thr = M.threshold_for_sensitivity(y, p, target, confidence)
            mixes.append(Mix(list(combo), sum(params[r] for r in combo), M.roc_auc(y, p),
                             M.binary_metrics(y, p, thr)["specificity"]))
    mixes.sort(key=lambda m: (-m.val_auc, len(m.runs)))
    for m in mixes:
        m.in_band = m.val_auc >= mixes[0].val_auc - band
    return mixes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (model.keras, config.json)")
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
        print(f"| {'*' if m.in_band else ''} | {m.val_auc:.4f} | {m.val_specificity:.3f} | "
              f"{m.params:,} | {' + '.join(m.runs)} |")
    print("Validation only; choose the cheapest marked mix, then build it with train/ensemble.py.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
