"""Guard fixtures: the tiny model exported WITH the not-a-lesion guard and the quality gate.

Lesions here are the synthetic blobs of ``fixtures_common`` on a textured skin background
(plain synthetic skin at 32 px is more than 96% flat, which the gate rightly calls unusable).
Non-lesions come from ``export/nonlesions.py`` with seeds the export never uses; real photos
from scikit-image's bundled data (no download).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_common import synth_lesion

GUARD_FORMATS = ("tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8")
# real photos only ever checked with (never used to choose anything); see test_guard.py
CHECK_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "page", "text",
                "hubble_deep_field", "clock", "logo", "cell", "immunohistochemistry")


def textured_lesions(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Synthetic lesions (classes alternating) with skin texture: uint8 ``[n, size, size, 3]``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = synth_lesion(rng, bool(i % 2), size).astype(np.float32)
        img += rng.normal(0, 9, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def fitted(images: np.ndarray, size: int) -> np.ndarray:
    from edge.preprocess import fit_to_input

    return np.stack([fit_to_input(i, size, size) for i in images])


def shipped_shape(tiny, name: str = "typed_tiny"):
    """``tiny`` (``train_tiny_model``'s Sequential CNN) rebuilt in the shipped model's shape,
    same weights and outputs: a functional model whose scaling layer feeds the convolutional
    part nested as ONE layer (a functional model named ``backbone``, as MobileNetV2 is in
    ``research/typed_head.py``), then a layer named ``features`` and the Dense head."""
    import keras

    clones = [layer.__class__.from_config(layer.get_config()) for layer in tiny.layers]
    scale, *body, head = clones
    size = int(tiny.input_shape[1])
    b_in = keras.Input((size, size, 3), name="backbone_input")
    h = b_in
    for layer in body:
        h = layer(h)
    backbone = keras.Model(b_in, h, name="backbone")
    inp = keras.Input((size, size, 3), name="image")
    feats = keras.layers.Identity(name="features")(backbone(scale(inp)))
    model = keras.Model(inp, head(feats), name=name)
    for new, old in zip(clones, tiny.layers):
        new.set_weights(old.get_weights())
    return model


def photo(name: str) -> np.ndarray:
    """A scikit-image bundled photo as RGB uint8 (grey and RGBA converted)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


@pytest.fixture(scope="session")
def guarded_export_results(tmp_path_factory, tiny_model_path):
    """``(folder, results)``: the tiny model exported with a guard in four formats."""
    import keras

    from edge.manifest import Manifest
    from export.guard_attach import GuardData, nonlesion_set
    from export.pipeline import export_model
    from tests.fixtures_export import TINY_CALIBRATION

    model = keras.saving.load_model(tiny_model_path, compile=False)
    size = int(model.input_shape[1])
    nl, kinds = nonlesion_set(size, n=90)
    neg, _ = nonlesion_set(size, n=90, seed=0)
    data = GuardData(fitted(textured_lesions(300, seed=21), size),
                     fitted(textured_lesions(120, seed=22), size), nonlesions=nl,
                     nonlesion_kinds=kinds, negatives=neg, described="synthetic textured lesions")
    cal = fitted(textured_lesions(TINY_CALIBRATION, seed=11), size)  # what the model will see
    x_test = fitted(textured_lesions(48, seed=23), size)
    y_test = (np.arange(48) % 2).astype(np.int32)
    out = tmp_path_factory.mktemp("guarded") / "export"
    results = export_model(model, out, list(GUARD_FORMATS), cal, Manifest(), guard=data,
                           test_images=x_test, test_labels=y_test,
                           min_calibration=TINY_CALIBRATION, log=lambda m: None)
    return out, results


@pytest.fixture(scope="session")
def guarded_export(guarded_export_results) -> Path:
    return guarded_export_results[0]
