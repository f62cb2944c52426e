"""Frozen-backbone activations cached on disk: computed once, reused by every experiment.

A pretrained backbone is cut in two at ``cut`` (e.g. MobileNetV2's ``block_12_add``): the
bottom (frozen, ~3/4 of the FLOPs) runs once per image and augmented view
(``research/views.py``); the cache holds its float16 activations. Training the top blocks and
the head then reads the cache instead of decoding, augmenting and running the bottom again.

Files: ``<cache>/<backbone>-<cut>-<size>-<colour constancy>/view<k>-seed<s>/acts.npy`` with
``paths.txt`` (one row per image path); ``$SKINLESION_CACHE`` (default ``.cache/`` in the
repository, git-ignored) moves it.

Example:
    >>> spec = BackboneSpec("mobilenetv2", 1.0, 224, "block_12_add")
    >>> spec.tag
    'mobilenetv2-1-224-block_12_add-none'
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.images import ImageError, load_rgb
from edge.preprocess import fit_to_input
from core.cache import cache_root
from research.views import view





@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone, where it is cut, at which input size and colour constancy."""

    name: str = "mobilenetv2"
    alpha: float = 1.0
    size: int = 224
    cut: str = "block_12_add"
    color_constancy: str = "none"
    augment: str = "dermoscope"  # the view recipe (research/views.py RECIPES)

    @property
    def tag(self) -> str:
        tail = "" if self.augment == "dermoscope" else f"-{self.augment}"
        return f"{self.name}-{self.alpha:g}-{self.size}-{self.cut}-{self.color_constancy}{tail}"


POOL_NAME = "global_average_pooling2d"  # the backbone's pooling layer, the same in every process


def build_backbone(spec: BackboneSpec):
    """``(backbone, bottom, top)``: the full pooled backbone and its two halves (shared layers).

    All take/produce float tensors; the backbone expects pixels already scaled to [-1, 1].
    """
    import keras

    from train.models import find_imagenet_weights

    if spec.name != "mobilenetv2":
        raise ValueError(f"unknown backbone {spec.name!r}")
    base = keras.applications.MobileNetV2(
        input_shape=(spec.size, spec.size, 3), alpha=spec.alpha, include_top=False,
        weights=str(find_imagenet_weights(spec.alpha)), pooling="avg")
    # Keras numbers auto-named layers per process: a cold cache builds extra backbones first, so
    # without a fixed name the shipped file's bytes would depend on the cache (the first name).
    base.layers[-1].name = POOL_NAME
    cut = base.get_layer(spec.cut).output
    bottom = keras.Model(base.input, cut, name="bottom")
    top = keras.Model(cut, base.output, name="top")
    return base, bottom, top


def bottom_fn(spec: BackboneSpec):
    """``uint8 [B, s, s, 3] -> activations``: MobileNetV2's bottom up to ``spec.cut``."""
    bottom = build_backbone(spec)[1]
    return lambda x: bottom.predict(x.astype(np.float32) / 127.5 - 1.0, verbose=0, batch_size=64)


def _prepare(item, k: int, spec: BackboneSpec, seed: int):
    try:
        rgb = load_rgb(item.path)
    except ImageError as e:
        return None, str(e)
    v = view(rgb, k, seed, key=str(item.path.name), recipe=spec.augment)
    return fit_to_input(v, spec.size, spec.size, spec.color_constancy), None


def _store(spec: BackboneSpec, k: int, seed: int) -> Path:
    return cache_root() / spec.tag / f"view{k}-seed{seed}"


def _load_store(path: Path) -> tuple[list[str], np.ndarray | None]:
    if not (path / "acts.npy").is_file():
        return [], None
    return (path / "paths.txt").read_text().splitlines(), np.load(path / "acts.npy")


def _save_store(path: Path, keys: list[str], acts: np.ndarray) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f"acts.tmp{os.getpid()}.npy"
    np.save(tmp, acts)
    (path / f"paths.tmp{os.getpid()}").write_text("\n".join(keys))
    os.replace(tmp, path / "acts.npy")  # acts first: a crash in between leaves a shorter index
    os.replace(path / f"paths.tmp{os.getpid()}", path / "paths.txt")


def activations(items: list, views: int, spec: BackboneSpec, seed: int = 0,
                batch: int = 64, verbose: bool = True) -> tuple[np.ndarray, list[str]]:
    """Cut activations ``[N, views, h, w, c]`` float16 for ``items``, and bad-file messages.

    One store per (backbone spec, view number, seed) keyed by image path; only images not in
    it yet run through the bottom. A bad file's rows are zeros and its message is returned
    (report-and-skip).
    """
    out, bad, bottom = None, [], None
    for k in range(views):
        store = _store(spec, k, seed)
        keys, acts = _load_store(store)
        index = {p: i for i, p in enumerate(keys)}
        missing = [it for it in items if str(it.path) not in index]
        if missing:
            bottom = bottom or bottom_fn(spec)
            new, errs = _run_bottom(bottom, missing, k, spec, seed, batch, verbose)
            bad += errs
            acts = new if acts is None else np.concatenate([acts, new])
            keys = keys + [str(it.path) for it in missing]
            _save_store(store, keys, acts)
            index = {p: i for i, p in enumerate(keys)}
        rows = acts[[index[str(it.path)] for it in items]]
        if out is None:
            out = np.zeros((len(items), views, *acts.shape[1:]), np.float16)
        out[:, k] = rows
    return out, bad


def _run_bottom(bottom, items, k, spec, seed, batch, verbose):
    out, bad, t0 = [], [], time.time()
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            res = list(pool.map(lambda it: _prepare(it, k, spec, seed), chunk))
            for it, (_, e) in zip(chunk, res):
                if e:
                    bad.append(e)
                    print(f"skipped: {e}", file=sys.stderr)
            x = np.stack([r if r is not None else np.zeros((spec.size, spec.size, 3), np.uint8)
                          for r, _ in res])
            a = bottom(x).astype(np.float16)
            a[[r is None for r, _ in res]] = 0
            out.append(a)
            if verbose and (start // batch) % 20 == 0:
                done = start + len(chunk)
                print(f"  {spec.tag} view {k}: {done}/{len(items)}, "
                      f"{done / (time.time() - t0):.1f}/s", file=sys.stderr, flush=True)
    return np.concatenate(out), bad
