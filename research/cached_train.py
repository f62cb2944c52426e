"""Train a lesion-type head, then the backbone's top blocks, on cached activations.

Phase ``head``: pooled features of every cached view (the frozen top run once) train the
head for many cheap epochs. Phase ``top``: the top blocks (BatchNorm frozen) and the head
train together on the cached cut activations, one random view of each image per epoch.
The epoch kept is the one with the best per-source validation ROC AUC of P(malignant), by
``select``: ``"worst"`` (the lowest source's AUC; the rule since phone photos joined) or
``"mean"`` (the mean over sources); a pooled AUC would reward telling the sources apart.

Example:
    >>> per_source_auc(np.array([0, 1, 0, 1]), np.array([.1, .9, .2, .8]), ["a", "a", "b", "b"])
    {'a': 1.0, 'b': 1.0}
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from research.source_eval import per_source
from research.typed_head import MALIGNANT_MASK, head_layers, partial_label_loss
from core.digits import down


def per_source_auc(y: np.ndarray, p: np.ndarray, sources: list[str]) -> dict[str, float]:
    """ROC AUC per source (sources with a single class are left out)."""
    return {s: r["roc_auc"] for s, r in per_source(y, p, sources, 0.5).items() if "roc_auc" in r}


@dataclass
class CachedResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -1.0
    seconds: dict[str, float] = field(default_factory=dict)


def _p_malignant(probs: np.ndarray) -> np.ndarray:
    return probs @ MALIGNANT_MASK


SELECT = {"worst": min, "mean": lambda v: float(np.mean(v))}


def _score(y, probs, sources, select: str = "worst") -> tuple[float, dict]:
    aucs = per_source_auc(y, _p_malignant(probs), sources)
    return float(SELECT[select](list(aucs.values()))), aucs


def pooled(top, acts: np.ndarray, batch: int = 256) -> np.ndarray:
    """Frozen-top pooled features ``[N, V, F]`` of cached activations ``[N, V, h, w, c]``."""
    n, v = acts.shape[:2]
    flat = acts.reshape(n * v, *acts.shape[2:])
    out = [top.predict(np.asarray(flat[i:i + batch], np.float32), verbose=0)
           for i in range(0, len(flat), batch)]
    return np.concatenate(out).reshape(n, v, -1)


def train_head(feats, masks, weights, val_feats, val, epochs: int = 60, lr: float = 1e-3,
               seed: int = 0, result: CachedResult | None = None, select: str = "mean"):
    """Head on pooled features; keeps the best epoch's weights. Returns ``(head, result)``."""
    import keras

    keras.utils.set_random_seed(seed)
    result = result or CachedResult()
    drop, dense = head_layers()
    inp = keras.Input((feats.shape[-1],))
    model = keras.Model(inp, dense(drop(inp)))
    model.compile(keras.optimizers.Adam(lr), partial_label_loss)
    rng, t0, best = np.random.default_rng(seed), time.time(), None
    y_val, src_val = val
    for ep in range(epochs):
        k = rng.integers(0, feats.shape[1], len(feats))
        x = feats[np.arange(len(feats)), k]
        h = model.fit(x, masks, sample_weight=weights, batch_size=64, epochs=1, verbose=0,
                      shuffle=True)
        score, aucs = _score(y_val, model.predict(val_feats, verbose=0), src_val, select)
        result.history.append({"phase": "head", "epoch": ep, "loss": h.history["loss"][0],
                               f"val_{select}_auc": score, **{f"val_auc_{s}": a for s, a in aucs.items()}})
        if score > result.best_score:
            result.best_score, result.best_epoch, best = score, ep, model.get_weights()
    model.set_weights(best)
    result.seconds["head"] = time.time() - t0
    return (drop, dense), result


def train_top(top, head, acts, masks, weights, val_acts, val, epochs: int = 8,
              lr: float = 1e-4, seed: int = 0, batch: int = 32, result: CachedResult | None = None,
              select: str = "mean"):
    """Top blocks (BatchNorm frozen) + head on cached activations, one random view per epoch."""
    import keras

    result = result or CachedResult()
    top.trainable = True
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    inp = keras.Input(acts.shape[2:])
    model = keras.Model(inp, head[1](head[0](top(inp))))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        lr, epochs * int(np.ceil(len(acts) / batch)), alpha=0.01)), partial_label_loss)
    rng, t0, y_val, src_val = np.random.default_rng(seed + 1), time.time(), *val
    best, start_score = model.get_weights(), result.best_score
    for ep in range(epochs):
        k = rng.integers(0, acts.shape[1], len(acts))
        x = np.asarray(acts[np.arange(len(acts)), k], np.float32)
        h = model.fit(x, masks, sample_weight=weights, batch_size=batch, epochs=1, verbose=0,
                      shuffle=True)
        probs = model.predict(np.asarray(val_acts[:, 0], np.float32), verbose=0, batch_size=128)
        score, aucs = _score(y_val, probs, src_val, select)
        result.history.append({"phase": "top", "epoch": ep, "loss": h.history["loss"][0],
                               f"val_{select}_auc": score,
                               **{f"val_auc_{s}": a for s, a in aucs.items()}})
        print(f"  top epoch {ep}: loss {down(h.history['loss'][0])} val {select} AUC "
              f"{down(score)} {aucs}", flush=True)
        if score > result.best_score:
            result.best_score, result.best_epoch, best = score, 1000 + ep, model.get_weights()
    model.set_weights(best)
    result.seconds["top"] = time.time() - t0
    result.seconds["top_start_score"] = start_score
    return result
