"""The guard in the export pipeline: which images fit it, the manifest section, its statistics.

``load_guard_data`` takes the run's training split (minus validation) to fit the guard, its
validation split for the operating point, generated non-lesion images (``export/nonlesions.py``,
seed ``NEGATIVE_SEED``) for the guard's discriminant, and another generated set (seed
``NONLESION_SEED``) to measure the rejection rate.
``attach_guard`` fits it on the Keras model's penultimate features, returns the model with
the score appended to its output vector and fills ``manifest.guard`` (method, output index,
threshold, rule, what it was fitted on, pass/reject rates). Parity later checks, per format,
that the artifact's guard decisions agree with the Keras model's (``guard_agreement``).

Example:
    >>> data = load_guard_data(info, data_dir, 128)                    # doctest: +SKIP
    >>> guarded = attach_guard(model, manifest, data)                  # doctest: +SKIP
    >>> manifest.guard.index, manifest.guard.stats["val_pass"]         # doctest: +SKIP
    (1, {'skin-lesions': 0.99})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.manifest import Guard, Manifest
from edge.preprocess import fit_to_input
from export import guard as G
from export.nonlesions import generate
from core.digits import pct

NEGATIVE_SEED = 0  # generated non-lesions the guard's discriminant is fitted on
NONLESION_SEED = 1  # the export's own non-lesion test set; tests and guard_eval use others
NONLESION_COUNT = 270
# Least share of test + non-lesion images on which an artifact's guard decision must equal the
# Keras model's. Float formats keep the score within 1e-5; int8 moves out-of-range
# activations of non-lesion images back into the calibrated range, which can pull a rejected
# image under the threshold: 98.67% measured for MobileNetV2-0.35 @ 128 px (TFLite and ONNX
# int8), 96.4-97.1% for the 32-px toy model of the tests.
MIN_GUARD_AGREEMENT = {"float": 0.99, "quantized": 0.95}


@dataclass
class GuardData:
    """uint8 model-sized images: ``train`` fits the Gaussian, ``val`` sets the operating point."""

    train: np.ndarray
    val: np.ndarray
    val_sources: list[str] = field(default_factory=list)  # one per val image
    nonlesions: np.ndarray | None = None  # rejection rate (stats) and guard parity
    nonlesion_kinds: list[str] = field(default_factory=list)
    negatives: np.ndarray | None = None  # fit the discriminant (None: Gaussian part only)
    k: int = G.DEFAULT_K
    described: str = ""

    def __post_init__(self) -> None:
        if not self.val_sources:
            self.val_sources = ["validation"] * len(self.val)


def nonlesion_set(size: int, n: int = NONLESION_COUNT, seed: int = NONLESION_SEED,
                  color_constancy: str = "none", border: str = "none",
                  ) -> tuple[np.ndarray, list[str]]:
    """Generated non-lesion images (drawn at 256 px, fitted like a photo, with the manifest's
    corrections) and their kinds."""
    imgs, kinds = generate(n, 256, seed)
    return np.stack([fit_to_input(i, size, size, color_constancy, border) for i in imgs]), kinds


def load_guard_data(config_path: Path | None, data_dir: Path, size: int,
                    color_constancy: str = "none", border: str = "none",
                    sources: dict[str, tuple[list, list]] | None = None) -> GuardData | None:
    """The run's train/validation split (``train/evaluate.py``'s) of ``data_dir``, model-sized
    and corrected as the runner will (``color_constancy``, ``border``: the manifest's).

    ``sources`` (a several-source run: ``{source name: (train Samples, val Samples)}``, the
    run's own split) replaces ``data_dir``'s split: every source's training images fit the
    guard, and its pass rate is reported per source. Test images are never used.
    """
    from train.config import TrainConfig
    from train.data import list_samples, load_arrays, split_train_val

    fix = {"color_constancy": color_constancy, "border": border}
    if sources:
        xs_tr, xs_va, names = [], [], []
        for name, (tr, va) in sources.items():
            xs_tr.append(load_arrays(tr, size, verbose=False, **fix)[0])
            x = load_arrays(va, size, verbose=False, **fix)[0]
            xs_va.append(x)
            names += [name] * len(x)
        x_tr, x_va = np.concatenate(xs_tr), np.concatenate(xs_va)
        where = ", ".join(f"{n} {len(a)}/{len(b)}" for n, a, b in zip(sources, xs_tr, xs_va))
        described = (f"{len(x_tr)} training and {len(x_va)} validation images of every "
                     f"source of the run's split (training/validation: {where})")
    else:
        cfg = TrainConfig.load(config_path) if config_path and Path(config_path).is_file() else None
        samples = list_samples(data_dir, "train")
        tr, va = (split_train_val(samples, cfg.val_fraction, cfg.val_seed) if cfg
                  else split_train_val(samples))
        x_tr, _, _ = load_arrays(tr, size, verbose=False, **fix)
        x_va, _, _ = load_arrays(va, size, verbose=False, **fix)
        names = [Path(data_dir).name] * len(x_va)
        described = (f"{len(x_tr)} training and {len(x_va)} validation images of "
                     f"{Path(data_dir).name} (the run's split)")
    if len(x_tr) < 50 or len(x_va) < 20:
        return None
    nl, kinds = nonlesion_set(size, **fix)
    neg, _ = nonlesion_set(size, seed=NEGATIVE_SEED, **fix)
    return GuardData(x_tr, x_va, names, nl, kinds, neg, described=described)


def _rates(passed: np.ndarray, groups: list[str]) -> dict[str, float]:
    out = {g: round(float(np.mean(passed[np.array(groups) == g])), 4) for g in sorted(set(groups))}
    out["all"] = round(float(np.mean(passed)), 4) if len(passed) else None
    return out


def attach_guard(model, manifest: Manifest, data: GuardData,
                 log: Callable[[str], None] = print):
    """Fit the guard on ``model``, fill ``manifest.guard``; return the guarded Keras model."""
    out_tr, f_tr = G.extract(model, data.train)
    out_va, f_va = G.extract(model, data.val)
    f_neg = G.extract(model, data.negatives)[1] if data.negatives is not None else None
    fit = G.fit_guard(f_tr, f_va, data.k, negatives=f_neg)
    guarded = G.guarded_model(model, fit)
    stats: dict = {"val_pass": _rates(fit.score(f_va) >= 0.5, data.val_sources),
                   "n_train": len(data.train), "n_val": len(data.val)}
    if data.nonlesions is not None and len(data.nonlesions):
        _, f_nl = G.extract(model, data.nonlesions)
        stats["nonlesion_reject"] = _rates(fit.score(f_nl) < 0.5, data.nonlesion_kinds)
        stats["nonlesion_set"] = (f"{len(data.nonlesions)} generated images "
                                  f"(export/nonlesions.py, seed {NONLESION_SEED}), guard only "
                                  "(without the quality gate)")
    manifest.guard = Guard(method=G.METHOD if fit.direction is None else G.METHOD + "+lda",
                           index=int(out_tr.shape[1]), threshold=0.5,
                           rule=fit.describe(), stats=stats,
                           fitted_on=data.described + (
                               f" + {len(data.negatives)} generated non-lesion images "
                               f"(export/nonlesions.py, seed {NEGATIVE_SEED})"
                               if data.negatives is not None else ""))
    check = np.asarray(guarded.predict(data.val[:16].astype(np.float32), verbose=0))
    if not np.allclose(check[:, -1], fit.score(f_va[:16]), atol=1e-3):
        raise RuntimeError("the in-graph guard score differs from the fitted one")
    log(f"Guard: {manifest.guard.method}, k={fit.k}; validation pass {pct(stats['val_pass']['all'])}"
        + (f", non-lesion reject {pct(stats['nonlesion_reject']['all'])}"
           if "nonlesion_reject" in stats else ""))
    return guarded


def guard_agreement(scores_art: np.ndarray, scores_keras: np.ndarray,
                    threshold: float) -> tuple[float, float]:
    """(share of images with the same guard decision, max |score difference|)."""
    a, k = np.asarray(scores_art), np.asarray(scores_keras)
    if not len(a):
        return float("nan"), float("nan")
    return float(np.mean((a >= threshold) == (k >= threshold))), float(np.abs(a - k).max())
