"""The yardstick for Raspberry Pi 4 estimates: MobileNetV2-1.0, exported like our models.

The published Pi 4 figures (XNNPACK README: MobileNetV2 224x224 on a Pi 4, 64-bit OS,
multi-threaded: fp32 46 ms, int8 17 ms) are for that network, so the benchmark times the
same network here, in the same run, and scales:

    Pi 4 estimate = (artifact p50 / reference p50 here) x published Pi 4 ms of the reference

matching threads, with int8 artifacts against the int8 reference and all others against
fp32. Weights are random (latency does not depend on them): ``Rescaling`` ->
``MobileNetV2(alpha=1.0, include_top=False, pooling="avg", weights=None)`` -> ``Dense(1,
sigmoid)``, exported by ``export.pipeline.export_model`` with random uint8 calibration
images. The files are cached in ``$SKINLESION_BENCH_CACHE`` (default
``~/.cache/skinlesion-bench``), keyed by input size and tool versions, so later runs and
devices without TensorFlow reuse them.

Example:
    >>> info = build_reference({"size": 224})          # doctest: +SKIP
    >>> sorted(info["files"])                          # doctest: +SKIP
    ['tflite_fp32', 'tflite_int8']
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from export.formats import FORMATS

REFERENCE_NAME = "mobilenetv2-1.0-reference"
REFERENCE_FORMATS = ("tflite_fp32", "tflite_int8")
PI4_MS = {"fp32": 46.0, "int8": 17.0}  # MobileNetV2 224, Pi 4, XNNPACK, multi-thread
PI4_SOURCE = ("XNNPACK README (github.com/google/XNNPACK), MobileNetV2 224x224 on Raspberry "
              "Pi 4, 64-bit OS, multi-threaded")
INT8_FORMATS = ("tflite_int8", "onnx_int8")
CALIBRATION_IMAGES = 16
RECIPE = 1  # bump when the network or the export recipe changes
ROOT = Path(__file__).resolve().parents[1]


class ReferenceUnavailable(RuntimeError):
    """The reference cannot be built (no TensorFlow) and none is cached."""


def cache_root() -> Path:
    return Path(os.environ.get("SKINLESION_BENCH_CACHE") or
                Path.home() / ".cache" / "skinlesion-bench")


def precision_of(fmt: str) -> str:
    """Which reference a format is scaled against: ``int8`` or ``fp32``."""
    return "int8" if fmt in INT8_FORMATS else "fp32"


def reference_format(fmt: str) -> str:
    return "tflite_int8" if precision_of(fmt) == "int8" else "tflite_fp32"


def cache_key(size: int) -> str:
    """Input size + the tool versions and TFLite converter source that shape the files."""
    parts = [str(RECIPE), str(size)]
    for pkg in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert"):
        try:
            parts.append(f"{pkg}={md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    converter = ROOT / "export" / "tflite.py"  # the conversion recipe; the rest is packaging
    parts.append(hashlib.sha256(converter.read_bytes()).hexdigest()[:12]
                 if converter.is_file() else "-")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cached(size: int) -> Path | None:
    """The folder for this key if complete, else the newest complete one for this size."""
    root = cache_root()
    exact = root / f"{REFERENCE_NAME}-{size}-{cache_key(size)}"
    done = lambda d: (d / "reference.json").is_file()  # noqa: E731
    if done(exact):
        return exact
    others = sorted((d for d in root.glob(f"{REFERENCE_NAME}-{size}-*") if done(d)),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    try:
        import tensorflow  # noqa: F401 - with TF we rebuild for these versions instead
        return None
    except ImportError:
        return others[0] if others else None


def _build_model(size: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inp)
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0,
                                          include_top=False, weights=None, pooling="avg")
    out = layers.Dense(1, activation="sigmoid", name="malignant")(base(x))
    return keras.Model(inp, out, name=f"mobilenetv2_1.0_{size}_reference")


def build_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Child-process entry: build (or reuse) the reference; ``{"dir", "files", "cached"}``."""
    import numpy as np

    size = int(spec.get("size", 224))
    folder = _cached(size)
    cached = folder is not None
    if folder is None:
        try:
            from export.pipeline import export_model
        except ImportError as e:
            raise ReferenceUnavailable(
                f"no cached reference in {cache_root()} and it cannot be built here ({e}); "
                "pip install -e '.[train,export]' or run with --no-reference") from e
        folder = cache_root() / f"{REFERENCE_NAME}-{size}-{cache_key(size)}"
        cal = np.random.default_rng(0).integers(0, 256, (CALIBRATION_IMAGES, size, size, 3),
                                                dtype=np.uint8)
        rows = export_model(_build_model(size), folder, formats=",".join(REFERENCE_FORMATS),
                            calibration=cal, min_calibration=CALIBRATION_IMAGES,
                            log=lambda msg: None)
        failed = [f"{r.name}: {r.error}" for r in rows if not r.ok]
        if failed:
            raise ReferenceUnavailable("reference export failed: " + "; ".join(failed))
        atomic_write_text(folder / "reference.json", json.dumps(
            {"size": size, "key": cache_key(size), "formats": list(REFERENCE_FORMATS)}))
    files = {f: str(folder / FORMATS[f].filename) for f in REFERENCE_FORMATS
             if (folder / FORMATS[f].filename).is_file()}
    return {"dir": str(folder), "files": files, "cached": cached, "size": size}
