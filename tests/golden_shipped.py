"""Record / compare the shipped model's predictions on fixed inputs.

The fixed inputs are 8 synthetic lesions (generated from a seed, no dataset needed) and, when
the shared dataset is present, the 6 lowest-numbered leak-free test images of each class.
``make shipped`` compares (``tests/test_shipped_model.py``); it never re-records. Re-record
only when the shipped model changes on purpose, as a separate step:

    make golden        # = python -m tests.golden_shipped --write
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "shipped_predictions.json"
SHIPPED = ROOT / "models" / "model_int8.tflite"
N_REAL_PER_CLASS = 6


def synthetic_inputs() -> dict[str, np.ndarray]:
    from tests.fixtures_common import synth_lesion

    rng = np.random.default_rng(1234)
    return {f"synthetic/{i}": synth_lesion(rng, bool(i % 2), 224) for i in range(8)}


def real_inputs(data_dir: Path) -> list[Path]:
    from train.data import list_samples

    test = list_samples(data_dir, "test", exclude_leaked=True)
    out = []
    for label in (0, 1):
        out += [s.path for s in test if s.label == label][:N_REAL_PER_CLASS]
    return out


def predictions(model: Path = SHIPPED, data_dir: Path | None = None) -> dict[str, dict]:
    """Per input: the raw P(malignant), guard score and modality (gate and guard off, so every
    input has them), and the status and label the runner gives with them on."""
    from edge.classifier import Classifier
    from edge.images import load_rgb

    raw, clf = Classifier(model, guard=False), Classifier(model)
    inputs = dict(synthetic_inputs())
    if data_dir is not None:
        inputs.update({p.relative_to(data_dir).as_posix(): load_rgb(p)
                       for p in real_inputs(data_dir)})
    out = {}
    for name, img in inputs.items():
        r, p = raw.predict_rgb(img, name), clf.predict_rgb(img, name)
        out[name] = {"raw_probability": r.raw_probability, "guard_score": r.guard_score,
                     "modality": r.modality, "status": p.status, "label": p.label}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="re-record the golden file")
    args = ap.parse_args(argv)
    from train.data import resolve_data_dir

    from core.atomic import atomic_write_text, sha256_file
    from edge.classifier import Classifier

    preds = predictions(SHIPPED, resolve_data_dir(None))
    m = Classifier(SHIPPED).manifest  # the file's own thresholds, as the runner uses them
    doc = {"model": SHIPPED.name, "sha256": sha256_file(SHIPPED), "threshold": m.threshold,
           "modality_thresholds": m.modality_thresholds,
           "predictions": preds}
    if args.write:
        atomic_write_text(GOLDEN, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {GOLDEN} ({len(preds)} predictions)")
    else:
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
