"""Evaluate an exported artifact per source and per lesion type, with the edge runner.

Research and education tool, not a medical device. Needs no TensorFlow: the sources come
from the run's ``config.json`` (``data_sources``) or ``--data``; preprocessing, threshold
and lesion types from the model's manifest.

Examples:
    python research/evaluate_sources.py --model models/model_int8.tflite --run runs/typed
    python research/evaluate_sources.py --model runs/typed/export/model_int8.onnx --data DIR1 DIR2 --json out.json
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import program  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402

from core.digits import down, named, pct  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program("research/evaluate_sources.py"),
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-m", "--model", type=Path, required=True, help=".tflite or .onnx file")
    p.add_argument("--run", type=Path, default=None, help="training run folder (its sources)")
    p.add_argument("--data", nargs="*", default=None, help="source folders, first = primary")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.atomic import atomic_write_text
    from edge.manifest import ManifestError
    from edge.runtimes import ModelLoadError, RuntimeMissing
    from research.source_metrics import source_report
    from train.data import DatasetNotFound
    from research.source_eval import table, types_line

    from train.run import RunDir

    cfg = {}
    if args.run:
        try:
            cfg = RunDir(args.run).config()
        except (OSError, ValueError) as e:
            print(f"error: {RunDir(args.run).config_json}: cannot read ({e}); pass --data instead",
                  file=sys.stderr)
            return 2
    sources = args.data or cfg.get("data_sources") or None
    try:
        rep = source_report(args.model, sources, float(cfg.get("val_fraction", 0.15)),
                            int(cfg.get("seed", 0)))
    except (DatasetNotFound, ManifestError, ModelLoadError, RuntimeMissing, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    thr = (named(rep["modality_thresholds"])
           or down(rep["threshold"]))
    print(f"{args.model}, threshold {thr}")
    for split in ("val", "test"):
        r = rep[split]
        print(f"\n{split}: n={r['n']}, ROC AUC {down(r['overall']['roc_auc'])}, "
              f"melanoma vs nevus AUC {r['mel_vs_nv_auc']}")
        cols = ("n", "n_malignant", "roc_auc", "sensitivity", "specificity")
        print(table(r["per_source"], cols))
        for key in ("per_modality", "per_fitzpatrick"):
            if r.get(key):
                print(f"{key.replace('_', ' ')}:\n" + table(r[key], cols))
        if r.get("modality_accuracy"):
            print("modality output right: " + ", ".join(f"{k} {pct(v)}" for k, v in
                                                        r["modality_accuracy"].items()))
        if r["per_type"]:
            print(table(r["per_type"], ("n", "malignant", "called_malignant", "type_accuracy")))
        for src, by_label in r.get("types_without_dx", {}).items():
            print(types_line(src, by_label))
        for src, o in r.get("at_sensitivity_0.90", {}).items():  # a diagnostic, not the rule
            types = ", ".join(f"{t} {pct(v)}" for t, v in o["called_malignant"].items())
            print(f"if {src} alone set the threshold for sensitivity 0.90: threshold "
                  f"{down(o['threshold'])}, specificity {down(o['specificity'])}"
                  + (f"; called malignant: {types}" if types else ""))
    print(f"\nTrained on: {rep['trained_on']}.\n{rep['disclaimer']}")
    if args.json:
        atomic_write_text(args.json, json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
