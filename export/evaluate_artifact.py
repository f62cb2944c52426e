"""Evaluate an exported artifact (.tflite/.onnx) on the leak-free test split with the edge runner.

Needs no TensorFlow and no training run (``export/artifact_metrics.py``): this is how the
shipped model's numbers in MODEL_CARD.md are reproduced from a clean clone.

Example:
    python export/evaluate_artifact.py                       # models/model_int8.tflite
    python export/evaluate_artifact.py --model models/model_int8.onnx --json metrics.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import program  # noqa: E402

from core import DISCLAIMER  # noqa: E402
from core.atomic import atomic_write_text  # noqa: E402
from core.digits import down, named  # noqa: E402
from export.artifact_metrics import artifact_metrics, ci_rows  # noqa: E402
from train.data import DatasetNotFound, resolve_data_dir  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "model_int8.tflite"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=program("export/evaluate_artifact.py"), description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-m", "--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("-d", "--data", default=None, help="dataset folder (default: the usual places)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON")
    args = ap.parse_args(argv)
    from edge.manifest import ManifestError
    from edge.runtimes import ModelLoadError, RuntimeMissing

    try:
        m = artifact_metrics(args.model, resolve_data_dir(args.data), args.bootstrap)
    except (DatasetNotFound, ManifestError, ModelLoadError, RuntimeMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    thr = (named(m["modality_thresholds"])
           + " by the model's modality output (images: " + ", ".join(
               f"{k} {n}" for k, n in m["modalities"].items()) + ")"
           if "modality_thresholds" in m else down(m["threshold"]))
    print(f"{args.model} on {m['n']} leak-free test images, threshold {thr}:")
    print("| metric | value | 95% CI |\n|---|---|---|\n" + "\n".join(ci_rows(m)))
    print(f"Confusion: TP {m['tp']}, FN {m['fn']}, TN {m['tn']}, FP {m['fp']}; ECE {down(m['ece'])}")
    print(f"Trained on: {m['trained_on']}.\n{DISCLAIMER}")
    if args.json:
        atomic_write_text(args.json, json.dumps(m, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
