"""An exported artifact under simulated dermoscope shifts: a stand-in for another clinic's device.

Each validation image of every source (the run's split; lesion-disjoint from training) is
shifted in one fixed way at a time (white balance, exposure, a dermoscope ring, blur, JPEG
quality, the other source's framing) and run through ``edge.classifier.Classifier`` (the
manifest's preprocessing, colour constancy and this file's threshold; gate and guard off).
Reported per shift and source: ROC AUC, and sensitivity and specificity at the file's own
threshold, beside the unshifted row. Ranking (AUC) and calibration (the share over the one
threshold) move separately: another clinic's images showed the second (specificity 0.22).

The shifts act on the image already sized to the model input (``load_arrays``), so a blur or a
JPEG quality means more than it would on a full-resolution frame.

Example:
    python research/shift_eval.py --model models/model_int8.tflite --run runs/mix-two-net
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from edge.preprocess import fill_dark_border  # noqa: E402
from research.shifts import SHIFTS, shift_report, table  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from core.helpformat import DefaultsHelp, program

    ap = argparse.ArgumentParser(prog=program("research/shift_eval.py"),
                                 description=__doc__.split("\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("--model", type=Path, default=Path("models/model_int8.tflite"))
    ap.add_argument("--run", type=Path, default=None,
                    help="run folder: its sources, validation fraction and split seed")
    ap.add_argument("--data", nargs="*", default=None,
                    help="source folders (default: the run's, else skin-lesions and "
                         "ham10000-extra beside it)")
    ap.add_argument("--shifts", default=",".join(SHIFTS), help="comma-separated: " + ", ".join(SHIFTS))
    ap.add_argument("--fill-dark-border", action="store_true",
                    help="apply edge.preprocess.fill_dark_border after each shift, as a manifest "
                         "with border fill_dark does (a no-op for such a file)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return ap


def main(argv: list[str] | None = None) -> int:
    from dataclasses import asdict

    from core.atomic import atomic_write_text
    from edge.manifest import ManifestError, find_manifest
    from edge.runtimes import ModelLoadError, RuntimeMissing
    from train.data import DatasetNotFound
    from train.run import RunDir

    args = build_parser().parse_args(argv)
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    unknown = [s for s in shifts if s not in SHIFTS]
    if unknown or not shifts:
        print(f"error: --shifts: unknown {', '.join(unknown) or '(none given)'}; choose from "
              f"{', '.join(SHIFTS)}", file=sys.stderr)
        return 2
    if "none" not in shifts:
        shifts.insert(0, "none")
    cfg = RunDir(args.run).config() if args.run else {}
    sources = args.data or cfg.get("data_sources") or ([cfg["data"]] if cfg.get("data") else None)
    try:
        split_seed = int(cfg.get("split_seed", -1))  # TrainConfig.val_seed
        rows = shift_report(args.model, sources, shifts, float(cfg.get("val_fraction", 0.15)),
                            split_seed if split_seed >= 0 else int(cfg.get("seed", 0)),
                            fill_dark_border if args.fill_dark_border else None)
    except (DatasetNotFound, ManifestError, ModelLoadError, RuntimeMissing, FileNotFoundError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.model} on validation images, each shift alone"
          + (", then fill_dark_border" if args.fill_dark_border else "")
          + ", at the file's threshold:")
    man = find_manifest(args.model)
    print(table(rows))
    print(f"\nTrained on: {man.trained_on}.\n{man.disclaimer}")
    if args.json:
        atomic_write_text(args.json, json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
