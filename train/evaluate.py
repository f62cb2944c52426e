"""Evaluate a trained run on the test split: metrics with 95% CIs, threshold, calibration, plots.

Examples:
    python train/evaluate.py --run runs/mnv2
    python train/evaluate.py --run runs/mnv2 --target-sensitivity 0.9 --tta
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core import DISCLAIMER, first_line  # noqa: E402
from core.digits import down  # noqa: E402
from core.helpformat import program  # noqa: E402
from train.data import DatasetNotFound  # noqa: E402
from train.run import RunDir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program("train/evaluate.py"), description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-r", "--run", default=None, help="run folder (default: newest runs/*)")
    p.add_argument("-d", "--data", default=None, help="dataset folder (default: the run's)")
    p.add_argument("--target-sensitivity", type=float, default=0.95,
                   help="pick the threshold on validation to reach this sensitivity")
    p.add_argument("--threshold-confidence", type=float, default=0.95,
                   help="the one-sided Wilson lower bound of validation sensitivity at this "
                        "confidence must reach the target (0: the point estimate must)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")
    p.add_argument("--tta", action="store_true", help="average predictions over 4 flips")
    p.add_argument("--gradcam", type=int, default=6, help="test images to explain (0: none)")
    p.add_argument("-o", "--out", default=None, help="report folder (default: the run folder)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = RunDir(args.run) if args.run else RunDir.latest()
    if run is None or not run.is_trained():
        where = run.model_keras if run else "runs/"
        print(f"error: {where}: no trained model here; train first (python train/train.py)",
              file=sys.stderr)
        return 2
    import keras

    from train.scoring import evaluate_run
    from train.run_report import write_report

    try:
        model = keras.models.load_model(run.model_keras, compile=False)
    except Exception as e:  # corrupt or truncated file
        print(f"error: {run.model_keras}: cannot load ({first_line(e, 120)}); "
              "re-train or restore the file", file=sys.stderr)
        return 2
    if run.load_config().head == "softmax":
        return _evaluate_classes(run, args, model)
    if int(model.output_shape[-1]) != 1:
        print(f"error: {run.model_keras}: a lesion-type model ({model.output_shape[-1]} outputs) was "
              f"evaluated on every source's validation images when it was written (see {run.report_md}); "
              "export it with export/convert.py and score it per source with research/evaluate_sources.py",
              file=sys.stderr)
        return 2
    try:
        ev = evaluate_run(run.path, args.data, args.target_sensitivity, args.bootstrap, args.tta, model,
                          args.threshold_confidence)
    except (DatasetNotFound, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = write_report(ev, args.out, args.gradcam, model)
    from train.data import leak_note

    if leak_note(ev.metrics["data"]) and run.load_config().exclude_leaked:
        print(leak_note(ev.metrics["data"]))
    from train.run_report import metrics_table

    m = ev.metrics
    print(metrics_table(m))
    print(f"\nthreshold {down(m['threshold'])} ({m['threshold_rule']}); "
          f"ECE {down(m['calibration']['ece_raw'])} -> {down(m['calibration']['ece_calibrated'])}")
    print(DISCLAIMER)
    print(f"wrote {report} and {RunDir(report.parent).metrics_json}")
    print(f"next: python export/convert.py --run {run}")
    return 0


def _evaluate_classes(run: RunDir, args, model) -> int:
    """An N-class run: per-class metrics and the confusion matrix (train/multiclass.py)."""
    from train.multiclass import evaluate_classes, summary_lines

    try:
        m = evaluate_classes(run.path, args.data, args.bootstrap, model, args.target_sensitivity,
                             args.threshold_confidence)
    except (DatasetNotFound, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(m)))
    print(DISCLAIMER)
    print(f"wrote {run.metrics_json}, {run.confusion_json} and {run.confusion_png}")
    print(f"next: python export/convert.py --run {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
