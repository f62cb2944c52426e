"""Join a benign/malignant run and a lesion-type run into one model with one output vector.

Research and education tool, not a medical device. Output: ``[P(malignant), P(types)]``
where ``P(malignant) = w * p_binary + (1 - w) * p_typed`` and the type probabilities are
the type run's. ``w`` is chosen on validation (every source): the highest mean per-source
ROC AUC on a 0.1 grid; among weights within ``--band`` of it, the one closest to 0.5
(both views kept when they agree). The joined model takes the larger input size; the run
with the smaller one gets the in-graph ``cv2.INTER_AREA`` resize of ``train/ensembling.py``.

Examples:
    python train/combine_typed.py --binary runs/ens2-192 --typed runs/typed --out runs/ens-typed
    python export/convert.py --run runs/ens-typed --formats tflite_int8,onnx_int8
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def combine(binary, typed, w: float):
    """One Keras graph: both models on one input (the larger size), a fixed mixing layer on top."""
    import keras

    from train.ensembling import area_resize

    sizes = [int(binary.input_shape[1]), int(typed.input_shape[1])]
    size = max(sizes)
    inp = keras.Input((size, size, 3), name="image")
    pb, pt = (m(inp if s == size else area_resize(inp, size, s, f"resize_{name}"))
              for m, s, name in zip((binary, typed), sizes, ("binary", "typed")))
    n = pt.shape[-1]
    kernel = np.zeros((1 + n, n), np.float32)
    kernel[0, 0], kernel[1, 0] = w, 1 - w
    kernel[2:, 1:] = np.eye(n - 1, dtype=np.float32)
    mix = keras.layers.Dense(n, use_bias=False, trainable=False, name="outputs")
    mix.build((None, 1 + n))
    mix.set_weights([kernel])
    return keras.Model(inp, mix(keras.layers.Concatenate(name="joined")([pb, pt])),
                       name="typed_ensemble")


def choose_weight(y: np.ndarray, pb: np.ndarray, pt: np.ndarray, sources: list[str],
                  band: float = 0.003) -> tuple[float, list[dict]]:
    """Grid search of ``w`` on validation; returns ``(w, rows)``.

    >>> y = np.array([0, 1, 0, 1]); choose_weight(y, y * .8 + .1, y * .6 + .2, list("aabb"))[0]
    0.5
    """
    from train.cached_train import per_source_auc

    rows = []
    for w in np.round(np.arange(0, 1.01, 0.1), 2):
        aucs = per_source_auc(y, w * pb + (1 - w) * pt, sources)
        rows.append({"w": float(w), "mean_auc": float(np.mean(list(aucs.values()))), **aucs})
    best = max(r["mean_auc"] for r in rows)
    near = [r for r in rows if r["mean_auc"] >= best - band]
    return min(near, key=lambda r: (abs(r["w"] - 0.5), -r["mean_auc"]))["w"], rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python train/combine_typed.py",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--binary", type=Path, required=True, help="run with one P(malignant) output")
    ap.add_argument("--typed", type=Path, required=True, help="run from train/train_typed.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--band", type=float, default=0.003)
    args = ap.parse_args(argv)
    import keras

    from train.sources import gather
    from train.typed_run import predict_items, write_run

    from train.run import RunDir

    tcfg = RunDir(args.typed).config()
    g = gather(tcfg["data_sources"], tcfg["val_fraction"], tcfg["seed"])
    binary = keras.models.load_model(RunDir(args.binary).model_keras, compile=False)
    typed = keras.models.load_model(RunDir(args.typed).model_keras, compile=False)
    cc = tcfg.get("color_constancy", "none")
    size = max(int(binary.input_shape[1]), int(typed.input_shape[1]))
    pb, files = predict_items(binary, g["val"], int(binary.input_shape[1]), cc)
    pt, _ = predict_items(typed, g["val"], int(typed.input_shape[1]), cc)
    keep = set(files)
    its = [i for i in g["val"] if str(i.path) in keep]
    w, rows = choose_weight(np.array([i.label for i in its]), pb[:, 0], pt[:, 0],
                            [i.source for i in its], args.band)
    for r in rows:
        print(json.dumps(r))
    print(f"chosen w = {w}")
    cfg = {"model": "typed_ensemble", "binary_run": str(args.binary), "typed_run": str(args.typed),
           "weight_binary": w, "weight_grid": rows}
    m = write_run(args.out, combine(binary, typed, w), g, size, cc, cfg, int(tcfg["seed"]),
                  float(tcfg["val_fraction"]))
    print(f"val mean per-source AUC {m['val_mean_source_auc']:.4f}; report: {RunDir(args.out).report_md}")
    print(f"next: python export/convert.py --run {args.out} --formats tflite_int8,onnx_int8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
