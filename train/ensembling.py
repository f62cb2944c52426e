"""Several trained runs as one Keras model: one input, the mean of the members' probabilities.

The ensemble takes the largest member input size. A member with a smaller input gets its
pixels through an exact linear copy of ``cv2.INTER_AREA`` (two fixed matrix products), the
resize that ``edge/preprocess.fit_to_input`` does for it in training, so the exported single
artifact needs one preprocessing step and the manifest one input size. Members stay nested
models (``member0``, ``member1``, ...), so Grad-CAM and int8 bias correction can reach them.

Example:
    >>> import numpy as np
    >>> r = area_matrix(224, 128)
    >>> r.shape, bool(np.allclose(r.sum(axis=1), 1.0))
    ((128, 224), True)
"""
from __future__ import annotations

import cv2
import numpy as np

MEMBER_PREFIX = "member"


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights with ``R @ v == cv2.resize(v, INTER_AREA)`` for a 1-D signal.

    ``cv2.INTER_AREA`` is separable, so ``R @ img @ R.T`` is its 2-D resize (per channel).
    """
    eye = np.eye(n_in, dtype=np.float32)
    cols = [cv2.resize(eye[:, j:j + 1], (1, n_out), interpolation=cv2.INTER_AREA).ravel()
            for j in range(n_in)]
    return np.stack(cols, axis=1).astype(np.float32)


def area_resize(x, n_in: int, n_out: int, name: str):
    """Functional ``(N, n_in, n_in, C) -> (N, n_out, n_out, C)`` area resize from standard layers."""
    from keras import layers

    kernel = area_matrix(n_in, n_out).T  # Dense kernel: (in, out)

    def fixed_dense(t, suffix):
        dense = layers.Dense(n_out, use_bias=False, trainable=False, name=f"{name}_{suffix}")
        t = dense(t)  # built by the call, so the fixed weights can go in now
        dense.set_weights([kernel])
        return t

    x = fixed_dense(layers.Permute((1, 3, 2), name=f"{name}_hcw")(x), "w")  # N, H, C, W'
    x = fixed_dense(layers.Permute((3, 2, 1), name=f"{name}_wch")(x), "h")  # N, W', C, H'
    return layers.Permute((3, 1, 2), name=f"{name}_hwc")(x)


def build_ensemble(members: list, name: str = "ensemble"):
    """One model averaging ``members``' sigmoid outputs; input = the largest member input.

    Every member must take square raw-pixel RGB input and return one probability.
    """
    import keras
    from keras import layers

    sizes = [int(m.input_shape[1]) for m in members]
    for m, s in zip(members, sizes):
        if m.input_shape[1:] != (s, s, 3) or m.output_shape[1:] != (1,):
            raise ValueError(f"member {m.name}: needs (S, S, 3) input and one output, got "
                             f"{m.input_shape} -> {m.output_shape}")
    size = max(sizes)
    inp = keras.Input((size, size, 3), name="image")
    outs = []
    for i, (m, s) in enumerate(zip(members, sizes)):
        m.name = f"{MEMBER_PREFIX}{i}_{m.name}"
        outs.append(m(inp if s == size else area_resize(inp, size, s, f"resize{i}")))
    out = layers.Average(name="malignant")(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inp, out, name=name)


def members_of(model) -> list[tuple[object, int]]:
    """``(member model, its input size)`` of an ensemble built here; ``[]`` for other models."""
    import keras

    return [(layer, int(layer.input_shape[1])) for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)]
