"""A linear probe on a frozen encoder, written as an exportable lesion-type run folder.

Research and education tool, not a medical device. The probe is ``train/teacher.py``'s:
standardised multinomial logistic regression on the encoder's cached pooled features
(``train/featcache.py``) over the lesion types, with benign/malignant per source where the
type is unknown (``teacher.class_key``); ``C`` is picked on out-of-fold AUC of the training
images (whole lesions per fold). It is then folded into Keras layers behind the encoder, so the
run folder holds one graph, raw pixels -> ``[P(malignant), P(types)]``, like
``train/train_typed.py``'s: ``train/combine_typed.py`` joins it with a benign/malignant run,
``export/convert.py`` exports it. A source-only class goes to the type it stands for in
practice (``skin-lesions``: malignant = melanoma, benign = nevus; ``SOURCE_TYPES``).

Example:
    python train/probe_run.py --encoder mobilenetv2 --out runs/probe-mnv2
    python train/combine_typed.py --binary runs/ens2-192 --typed runs/probe-mnv2 --out runs/ens-probe
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edge.preprocess import COLOR_CONSTANCY  # noqa: E402
from core.digits import down  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# a class known only as "<source>:<label>" -> the lesion type it stands for in the type output
SOURCE_TYPES = {0: "nv", 1: "mel"}


def type_matrix(class_names: list[str]) -> np.ndarray:
    """``[classes, 1 + types]``: probe class probabilities -> ``[P(malignant), P(types)]``.

    A lesion type maps to itself; ``"<source>:1"`` counts as malignant and as melanoma,
    ``"<source>:0"`` as nevus (``SOURCE_TYPES``).

    >>> m = type_matrix(["bkl", "mel", "skin-lesions:0", "skin-lesions:1"])
    >>> m[:, 0].tolist(), m.sum(axis=1).tolist()
    ([0.0, 1.0, 0.0, 1.0], [1.0, 2.0, 1.0, 2.0])
    >>> from train.sources import DX_CLASSES
    >>> [DX_CLASSES[int(k) - 1] for k in np.argmax(m[:, 1:], axis=1) + 1]
    ['bkl', 'mel', 'nv', 'mel']
    """
    from train.sources import DX_CLASSES, MALIGNANT_DX

    out = np.zeros((len(class_names), 1 + len(DX_CLASSES)), np.float32)
    for i, name in enumerate(class_names):
        if name in DX_CLASSES:
            dx = name
        else:
            source, _, label = name.rpartition(":")
            if not source or label not in ("0", "1"):
                raise ValueError(f"probe class {name!r} is neither a lesion type nor <source>:<0|1>")
            dx = SOURCE_TYPES[int(label)]
        out[i, 0] = float(dx in MALIGNANT_DX)
        out[i, 1 + DX_CLASSES.index(dx)] = 1.0
    return out


def fold_probe(clf) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel [D, classes], bias)`` of one Dense layer equal to a scaler + multinomial
    logistic-regression pipeline's logits (softmax of them = its ``predict_proba``)."""
    scaler, lr = clf[0], clf[-1]
    if lr.coef_.shape[0] != len(lr.classes_):
        raise ValueError("the probe must be multinomial over >= 3 classes (one row per class)")
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = (lr.coef_ / scale).T
    b = lr.intercept_ - (scaler.mean_ / scale) @ lr.coef_.T
    return w.astype(np.float32), b.astype(np.float32)


def probe_model(encoder, clf, class_names: list[str], size: int, name: str = "probe"):
    """Raw RGB 0..255 ``[B, size, size, 3]`` -> ``[P(malignant), P(types)]`` in one Keras graph.

    ``encoder`` maps raw pixels to pooled features (``train.encoders.keras_encoder``); the
    layer named ``features`` is its output (the guard reads the final Dense's input).
    """
    import keras

    w, b = fold_probe(clf)
    inp = keras.Input((size, size, 3), name="image")
    f = keras.layers.Identity(name="features")(encoder(inp))
    dense = keras.layers.Dense(w.shape[1], activation="softmax", name="probe_classes")
    probs = dense(f)
    dense.set_weights([w, b])
    m = type_matrix(class_names)
    out = keras.layers.Dense(m.shape[1], use_bias=False, trainable=False, name="outputs")
    y = out(probs)
    out.set_weights([m])
    return keras.Model(inp, y, name=name)


def build_parser() -> argparse.ArgumentParser:
    from core.helpformat import DefaultsHelp

    p = argparse.ArgumentParser(prog="python train/probe_run.py",
                                description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp)
    p.add_argument("--data", nargs="*", default=None,
                   help="source folders, the first is primary; default: skin-lesions and ham10000-extra")
    p.add_argument("--encoder", default="mobilenetv2",
                   help="a Keras encoder of train/encoders.py (mobilenetv2, efficientnet_lite0/1/2)")
    p.add_argument("--size", type=int, default=None, help="input size (default: the encoder's native)")
    p.add_argument("--color-constancy", choices=COLOR_CONSTANCY, default="none",
                   help="applied before the encoder in training and, through the manifest, "
                        "everywhere the model runs (edge/preprocess.py)")
    p.add_argument("--c", type=float, default=None,
                   help="inverse regularisation strength; default: picked on out-of-fold AUC")
    p.add_argument("--folds", type=int, default=5, help="folds for picking C")
    p.add_argument("--seed", type=int, default=0, help="split seed (the other runs' --split-seed)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    return p


def fit(args) -> dict:
    """Fit the probe on the cached training features and write the run folder."""
    from train.encoders import keras_encoder, parse_encoder
    from train.featcache import pooled_features
    from train.sources import MALIGNANT_DX, gather
    from train.teacher import C_GRID, class_key, fit_probe, probe
    from train.typed_run import write_run

    name, size, _ = parse_encoder(f"{args.encoder}:{args.size or ''}")
    if name == "vit_s_focus":
        raise ValueError("--encoder vit_s_focus runs in onnxruntime, not Keras, so it cannot join "
                         "the exported graph; choose mobilenetv2 or efficientnet_lite0/1/2")
    g, t0 = gather(args.data, args.val_fraction, args.seed), time.time()
    feats, bad = pooled_features(g, name, size, 1, ("train",), args.color_constancy)
    ok = np.array([not any(b.startswith(f"{i.path}:") for b in bad) for i in g["train"]])
    items, x = [i for i, k in zip(g["train"], ok) if k], feats["train"][ok]
    classes = [class_key(i.label, i.dx, i.source) for i in items]
    malignant = set(MALIGNANT_DX) | {c for c, i in zip(classes, items) if not i.dx and i.label}
    c = args.c
    if c is None:
        _, _, c = probe(x, classes, malignant, [i.lesion or str(i.path) for i in items], [],
                        c_grid=C_GRID, folds=args.folds)
    clf, names = fit_probe(x, classes, c)
    fit_s = time.time() - t0
    model = probe_model(keras_encoder(name, size), clf, names, size, name=f"probe_{name}")
    cfg = {"model": "probe", "encoder": name, "C": c, "probe_classes": names,
           "source_types": {str(k): v for k, v in SOURCE_TYPES.items()}, "n_train": len(items),
           "fit_s": round(fit_s, 1)}
    metrics = write_run(args.out, model, g, size, args.color_constancy, cfg, args.seed,
                        args.val_fraction)
    metrics["bad_files"] = bad
    return metrics


def main(argv: list[str] | None = None) -> int:
    from train.run import RunDir

    args = build_parser().parse_args(argv)
    try:
        m = fit(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run = RunDir(args.out)
    run.write_json(run.metrics_json, m)
    per = ", ".join(f"{Path(s).name} {down(r['roc_auc'])}" for s, r in m["val_report"]["per_source"].items()
                    if "roc_auc" in r)
    print(f"validation AUC per source: {per} (mean {down(m['val_mean_source_auc'])}); "
          f"report: {run.report_md}")
    print(f"next: python train/combine_typed.py --binary RUN --typed {args.out} --out RUN2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
