"""A lesion-type head with a benign/malignant output, trained on cached activations.

The head is a softmax over HAM10000's seven lesion types (``research.multisource.DX_CLASSES``).
``P(malignant)`` is the sum of the malignant types' probabilities, so both outputs always
agree. A source that knows the type (``dx``) trains the softmax directly; a source that only
says benign or malignant (the Kaggle set) trains it with a *partial-label* loss: the
negative log of the probability mass on the types its label allows. One loss, one head.

The exported model's output is one vector ``[P(malignant), P(type_1) .. P(type_7)]``
(``edge/manifest.py`` schema 3), and with a modality head ``P(phone photo)`` after them
(schema 5: ``modality_index`` 8); the layer named ``features`` is the pooled penultimate
representation (the guard reads it). The modality head is a logistic regression on those
features (``fit_modality_head``), fitted after the rest, so it never shapes them.

Example:
    >>> m = type_masks([Item(Path("a"), 1, "bcc"), Item(Path("b"), 0, "")])
    >>> m.astype(int).tolist()
    [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 1, 1]]
"""
from __future__ import annotations

from pathlib import Path  # noqa: F401  (the doctest above uses it)

import numpy as np

from research.multisource import DX_CLASSES, MALIGNANT_DX, Item

MALIGNANT_MASK = np.array([c in MALIGNANT_DX for c in DX_CLASSES], np.float32)


def type_masks(items: list[Item]) -> np.ndarray:
    """``[N, 7]`` 0/1 masks of the types each item's label allows (one-hot when ``dx`` known)."""
    out = np.zeros((len(items), len(DX_CLASSES)), np.float32)
    for i, it in enumerate(items):
        if it.dx in DX_CLASSES:
            out[i, DX_CLASSES.index(it.dx)] = 1
        else:
            out[i] = MALIGNANT_MASK if it.label == 1 else 1 - MALIGNANT_MASK
    return out


def balanced_weights(items: list[Item]) -> np.ndarray:
    """Per-sample weights giving every (source, label) group the same total, mean 1."""
    keys = [(it.source, it.label) for it in items]
    counts = {k: keys.count(k) for k in set(keys)}
    w = np.array([1.0 / counts[k] for k in keys], np.float32)
    return w * len(w) / w.sum()


def partial_label_loss(mask, probs):
    """``-log(sum(probs * mask))`` per sample (Keras loss: ``y_true`` is the mask)."""
    from keras import ops

    return -ops.log(ops.clip(ops.sum(probs * mask, axis=-1), 1e-7, 1.0))


def output_layer():
    """Fixed Dense: type probabilities -> ``[P(malignant), probabilities]`` (not trained)."""
    import keras

    kernel = np.concatenate([MALIGNANT_MASK[:, None], np.eye(len(DX_CLASSES), dtype=np.float32)], 1)
    layer = keras.layers.Dense(1 + len(DX_CLASSES), use_bias=False, trainable=False,
                               name="outputs")
    layer.build((None, len(DX_CLASSES)))
    layer.set_weights([kernel])
    return layer


def head_layers(dropout: float = 0.3, l2: float = 1e-4):
    """``(dropout, dense logits -> softmax)`` applied to pooled features."""
    import keras

    return (keras.layers.Dropout(dropout, name="head_dropout"),
            keras.layers.Dense(len(DX_CLASSES), activation="softmax", name="types",
                               kernel_regularizer=keras.regularizers.L2(l2)))


def fit_modality_head(feats: np.ndarray, is_phone: np.ndarray, epochs: int = 60,
                      seed: int = 0, lr: float = 1e-3):
    """A ``Dense(1, sigmoid)`` named ``modality`` on pooled features ``[N, F]``: P(phone photo).

    Classes weighted equally (phone photos are the minority), L2 on the kernel.
    """
    import keras

    keras.utils.set_random_seed(seed)
    y = np.asarray(is_phone, np.float32)
    n_pos = max(float(y.sum()), 1.0)
    w = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * max(len(y) - n_pos, 1.0)))
    layer = keras.layers.Dense(1, activation="sigmoid", name="modality",
                               kernel_regularizer=keras.regularizers.L2(1e-3))
    inp = keras.Input((feats.shape[-1],))
    m = keras.Model(inp, layer(inp))
    m.compile(keras.optimizers.Adam(lr), "binary_crossentropy")
    m.fit(feats.astype(np.float32), y, sample_weight=w.astype(np.float32), batch_size=128,
          epochs=epochs, verbose=0)
    return layer


def full_model(base, head, image_size: int, name: str = "typed_mobilenetv2", modality=None):
    """Raw RGB 0..255 -> ``[P(malignant), P(types)]`` (``+ [P(phone)]`` with a ``modality``
    layer): scaling, backbone, head, fixed output."""
    import keras

    inp = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inp)
    f = keras.layers.Identity(name="features")(base(x))
    out = output_layer()(head[1](head[0](f)))
    if modality is not None:
        out = keras.layers.Concatenate(name="outputs_modality")([out, modality(f)])
    return keras.Model(inp, out, name=name)
