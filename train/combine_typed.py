"""Join benign/malignant runs and lesion-type runs into one model with one output vector.

Research and education tool, not a medical device. Output: ``[P(malignant), P(types)]``.
With ``--binary`` and ``--typed``: ``P(malignant) = w * p_binary + (1 - w) * p_typed`` and the
type probabilities are the type run's; ``w`` is chosen on validation (every source): the highest
mean per-source ROC AUC on a 0.1 grid; among weights within ``--band`` of it, the one closest
to 0.5 (both views kept when they agree). With ``--runs RUN=WEIGHT ...``: the weights given
(``mix_runs``); type runs on one frozen trunk share it. The joined model takes the largest input
size; a run with a smaller one gets the in-graph ``cv2.INTER_AREA`` resize of
``train/ensembling.py``.

Examples:
    python train/combine_typed.py --binary runs/ens2-192 --typed runs/typed --out runs/ens-typed
    python train/combine_typed.py --runs runs/seed_cnn-128-e60=3 runs/typed-v6-t8 runs/probe-mnv2 --out runs/mix
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

from core.digits import down  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _trunk_features(model) -> np.ndarray | None:
    """A lesion-type model's ``features`` on a fixed random image batch, or ``None`` (no such
    layer). Two models whose features agree compute the same trunk, so it can run once."""
    import keras

    try:
        feat = model.get_layer("features")
    except ValueError:
        return None
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype(np.float32)
    return keras.Model(model.inputs[0], feat.output).predict(x, verbose=0)


def _normalised(w: list[float]) -> np.ndarray:
    """Weights summing to one; all zero -> equal.

    >>> _normalised([3, 1]).tolist(), _normalised([0, 0]).tolist()
    ([0.75, 0.25], [0.5, 0.5])
    """
    w = np.asarray(w, np.float32)
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w), np.float32)


def shared_heads(models: list, weights: list[float], name: str):
    """Lesion-type models with one trunk -> one model: the trunk once, then every model's
    layers after ``features``, mixed by ``weights`` (normalised) into one output vector."""
    import keras

    size = int(models[0].input_shape[1])
    inp = keras.Input((size, size, 3), name="image")
    feats = keras.Model(models[0].inputs[0], models[0].get_layer("features").output,
                        name="trunk")(inp)
    feats = keras.layers.Identity(name="features")(feats)
    outs = [keras.Model(m.get_layer("features").output, m.outputs[0], name=f"head{i}")(feats)
            for i, m in enumerate(models)]
    n = int(outs[0].shape[-1])
    w = _normalised(weights)
    mixer = keras.layers.Dense(n, use_bias=False, trainable=False, name="outputs")
    y = mixer(keras.layers.Concatenate(name="heads")(outs))
    mixer.set_weights([np.concatenate([wi * np.eye(n, dtype=np.float32) for wi in w])])
    return keras.Model(inp, y, name=name)


def mix_runs(models: list, weights: list[float], name: str = "typed_ensemble"):
    """One Keras graph: ``[P(malignant), P(types)]`` from benign/malignant models (one output)
    and lesion-type models (``1 + types`` outputs, at least one), mixed by ``weights``.

    ``P(malignant)`` is the weighted mean of every model's; the type probabilities are the
    weighted mean of the type models'. Type models that share their trunk (``_trunk_features``) are
    joined first, so e.g. a trained head and a linear probe on one frozen backbone cost one
    backbone. The graph takes the largest input size; a smaller model gets the in-graph
    ``cv2.INTER_AREA`` resize of ``train/ensembling.py``. Members are nested models named
    ``member<i>_...`` (Grad-CAM, int8 bias correction and the guard reach them).
    """
    import keras

    from train.ensembling import MEMBER_PREFIX, area_resize

    if len(models) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError("one weight >= 0 per model, not all zero")
    n_out = {int(m.output_shape[-1]) for m in models}
    n = max(n_out)
    if n < 2 or not n_out <= {1, n}:
        raise ValueError(f"outputs must be 1 (benign/malignant) or 1 + types, got {sorted(n_out)}")
    groups: list[tuple[np.ndarray | None, list[int]]] = []  # (trunk features, model indices)
    for i, m in enumerate(models):
        f = _trunk_features(m) if int(m.output_shape[-1]) == n else None
        same = next((idx for g, idx in groups if f is not None and g is not None
                     and g.shape == f.shape and np.allclose(g, f, atol=1e-4)), None)
        if same is None:
            groups.append((f, [i]))
        else:
            same.append(i)
    members, mw = [], []
    for _, idx in groups:
        if len(idx) == 1:
            members.append(models[idx[0]])
        else:
            members.append(shared_heads([models[i] for i in idx], [weights[i] for i in idx],
                                        f"shared{len(members)}"))
        mw.append(float(sum(weights[i] for i in idx)))
    p_w = _normalised(mw)
    typed = [int(m.output_shape[-1]) == n for m in members]
    t_w = dict(zip([i for i, t in enumerate(typed) if t], _normalised([w for w, t in zip(mw, typed) if t])))
    size = max(int(m.input_shape[1]) for m in members)
    inp = keras.Input((size, size, 3), name="image")
    outs, rows = [], []
    for i, m in enumerate(members):
        s = int(m.input_shape[1])
        m.name = f"{MEMBER_PREFIX}{i}_{m.name}"
        outs.append(m(inp if s == size else area_resize(inp, size, s, f"resize{i}")))
        k = int(m.output_shape[-1])
        block = np.zeros((k, n), np.float32)
        block[0, 0] = p_w[i]
        if typed[i]:
            block[1:, 1:] = t_w[i] * np.eye(n - 1, dtype=np.float32)
        rows.append(block)
    mixer = keras.layers.Dense(n, use_bias=False, trainable=False, name="outputs")
    y = mixer(keras.layers.Concatenate(name="joined")(outs))
    mixer.set_weights([np.concatenate(rows)])
    return keras.Model(inp, y, name=name)


def combine(binary, typed, w: float):
    """``mix_runs`` of one benign/malignant model (weight ``w``) and one type model (``1 - w``)."""
    return mix_runs([binary, typed], [w, 1 - w])


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


def parse_run(text: str) -> tuple[Path, float]:
    """``"runs/a=2"`` -> ``(Path("runs/a"), 2.0)``; no ``=``: weight 1.

    >>> parse_run("runs/a=2"), parse_run("runs/b")
    ((PosixPath('runs/a'), 2.0), (PosixPath('runs/b'), 1.0))
    """
    path, sep, w = text.rpartition("=")
    if not sep:
        return Path(text), 1.0
    try:
        return Path(path), float(w)
    except ValueError:
        raise ValueError(f"--runs {text}: the weight after '=' must be a number") from None


def load_runs(runs: list[Path]) -> list:
    """Each run's Keras model; every run must share the first's validation split."""
    import keras

    from train.run import RunDir

    for r in runs:
        if not RunDir(r).model_keras.is_file() or not RunDir(r).config_json.is_file():
            raise FileNotFoundError(f"{RunDir(r).model_keras} or its config.json not found; train "
                                    "that run first or fix the path")
    first = RunDir(runs[0]).load_config()
    for r in runs[1:]:
        diff = first.split_differences(RunDir(r).load_config())
        if diff:
            raise ValueError(f"{r}: {', '.join(diff)} differ from {runs[0]}, so its validation "
                             "images differ; use runs trained with the same split")
    return [keras.models.load_model(RunDir(r).model_keras, compile=False) for r in runs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python train/combine_typed.py",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--binary", type=Path, help="run with one P(malignant) output")
    ap.add_argument("--typed", type=Path, help="run from train/train_typed.py or train/probe_run.py")
    ap.add_argument("--runs", nargs="+", default=None, metavar="RUN[=WEIGHT]",
                    help="instead of --binary/--typed: these runs with these weights (e.g. from "
                         "train/build_teacher.py --min-primary; a member chosen twice: =2); at "
                         "least one lesion-type run; its data and split are used")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--band", type=float, default=0.003)
    args = ap.parse_args(argv)
    if (args.runs is None) == (args.binary is None or args.typed is None):
        ap.error("give --binary and --typed, or --runs")
    from train.run import RunDir
    from train.sources import gather
    from train.typed_run import predict_items, write_run

    try:
        if args.runs is not None:
            pairs = [parse_run(t) for t in args.runs]
            models = load_runs([p for p, _ in pairs])
        else:
            pairs = [(args.binary, 1.0), (args.typed, 1.0)]
            models = load_runs([args.binary, args.typed])
        typed_runs = [p for (p, _), m in zip(pairs, models) if int(m.output_shape[-1]) > 1]
        if not typed_runs:
            raise ValueError("no lesion-type run among the runs (train/train_typed.py or "
                             "train/probe_run.py makes one)")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tcfg = RunDir(typed_runs[0]).config()
    g = gather(tcfg["data_sources"], tcfg["val_fraction"], tcfg["seed"])
    cc = tcfg.get("color_constancy", "none")
    size = max(int(m.input_shape[1]) for m in models)
    if args.runs is not None:
        weights = [w for _, w in pairs]
        cfg = {"model": "typed_ensemble", "runs": [str(p) for p, _ in pairs], "weights": weights}
    else:
        binary, typed = models
        pb, files = predict_items(binary, g["val"], int(binary.input_shape[1]), cc)
        pt, _ = predict_items(typed, g["val"], int(typed.input_shape[1]), cc)
        keep = set(files)
        its = [i for i in g["val"] if str(i.path) in keep]
        w, rows = choose_weight(np.array([i.label for i in its]), pb[:, 0], pt[:, 0],
                                [i.source for i in its], args.band)
        for r in rows:
            print(json.dumps(r))
        print(f"chosen w = {w}")
        weights = [w, 1 - w]
        cfg = {"model": "typed_ensemble", "binary_run": str(args.binary), "typed_run": str(args.typed),
               "weight_binary": w, "weight_grid": rows}
    m = write_run(args.out, mix_runs(models, weights), g, size, cc, cfg, int(tcfg["seed"]),
                  float(tcfg["val_fraction"]))
    print(f"val mean per-source AUC {down(m['val_mean_source_auc'])}; report: {RunDir(args.out).report_md}")
    print(f"next: python export/convert.py --run {args.out} --formats tflite_int8,onnx_int8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
