"""Edge preprocessing matches training bit for bit, and TensorFlow's decoder within 1 grey level.

Training (``train.data.load_arrays`` -> ``make_dataset``) and the edge runner
(``Classifier.prepare``) both decode with ``edge.images.load_rgb`` and size with
``edge.preprocess.fit_to_input``, so their tensors must be identical. For comparison, a
pure-TensorFlow pipeline (``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` +
``tf.image.resize(method="area")``) lands within 1 grey level (measured on the real test
images: identical at 32, 96, 128 and 224 px; at exactly half size, 224 -> 112, OpenCV's
INTER_AREA fast path rounds halves differently, off by 1 in ~12% of values). TF's default
``dct_method`` (fast IDCT) is NOT comparable: up to ~18 grey levels off (mean ~1).
"""
from __future__ import annotations

import numpy as np
import pytest

from edge.classifier import Classifier
from edge.images import load_rgb
from edge.preprocess import fit_to_input, to_model_input

FORMATS = ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")


def _training_arrays(data_dir, size: int):
    data = pytest.importorskip("train.data", reason="train/data.py (the training loader) is "
                                                    "not importable here")
    samples = data.list_samples(data_dir, "test")
    x, _, bad = data.load_arrays(samples, size, verbose=False)
    assert not bad and len(x) == len(samples) > 0
    return [s.path for s in samples], x


@pytest.mark.parametrize("fmt", FORMATS)
def test_runner_tensor_equals_training_tensor(tiny_export, synthetic_dataset, fmt):
    clf = Classifier(tiny_export / fmt)
    paths, x = _training_arrays(synthetic_dataset, clf.manifest.input_height)
    spec = clf.runtime.input
    art = clf.manifest.artifact_for(clf.model_path)
    assert (art.input.dtype, art.input.scale, art.input.zero_point) == (
        spec.dtype, pytest.approx(spec.scale), spec.zero_point)  # manifest == model's own
    for path, train_img in zip(paths, x):
        edge_tensor = clf.prepare(load_rgb(path))
        expected = to_model_input(train_img, spec.dtype, spec.scale, spec.zero_point)
        assert edge_tensor.dtype == expected.dtype and np.array_equal(edge_tensor, expected)
        if spec.dtype == "float32":  # what the Keras model saw in training: the raw pixels
            assert np.array_equal(edge_tensor[0], train_img.astype(np.float32))


def test_training_tf_data_pipeline_keeps_the_pixels(synthetic_dataset):
    """``make_dataset`` (no augmentation) feeds the loader's pixels unchanged, as float32."""
    pytest.importorskip("tensorflow")
    data = pytest.importorskip("train.data")
    paths, x = _training_arrays(synthetic_dataset, 32)
    y = np.zeros(len(x), np.int32)
    batch = next(iter(data.make_dataset(x, y, batch_size=len(x))))[0].numpy()
    assert batch.dtype == np.float32 and np.array_equal(batch, x.astype(np.float32))
    for path, img in zip(paths, batch):  # and the runner's fit_to_input gives the same
        assert np.array_equal(fit_to_input(load_rgb(path), 32, 32).astype(np.float32), img)


@pytest.mark.real_data
def test_real_images_match_training_loader(tiny_export, real_slice):
    clf = Classifier(tiny_export / "model_int8.tflite")
    paths, x = _training_arrays(real_slice, clf.manifest.input_height)
    spec = clf.runtime.input
    for path, img in zip(paths, x):
        assert np.array_equal(clf.prepare(load_rgb(path)),
                              to_model_input(img, spec.dtype, spec.scale, spec.zero_point))


def _jpegs(real_data_dir_or_none, synthetic_dataset) -> list:
    if real_data_dir_or_none is not None:
        files = sorted((real_data_dir_or_none / "test").rglob("*.jpg"))
        return files[:: max(1, len(files) // 24)][:24]
    return sorted((synthetic_dataset / "test").rglob("*.jpg"))


@pytest.mark.parametrize("size", [32, 112, 128])
def test_tensorflow_decode_and_area_resize_within_one_grey_level(synthetic_dataset, size):
    tf = pytest.importorskip("tensorflow")
    from tests.fixtures_common import SHARED_DATA

    files = _jpegs(SHARED_DATA if (SHARED_DATA / "test").is_dir() else None, synthetic_dataset)
    assert files
    worst = 0
    for f in files:
        img = tf.io.decode_jpeg(tf.io.read_file(str(f)), channels=3,
                                dct_method="INTEGER_ACCURATE")
        h, w = int(img.shape[0]), int(img.shape[1])
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        ref = np.round(tf.image.resize(img, (size, size), method="area").numpy()).astype(int)
        ours = fit_to_input(load_rgb(f), size, size).astype(int)
        worst = max(worst, int(np.abs(ref - ours).max()))
    assert worst <= 1, f"edge preprocessing differs from TensorFlow's by {worst} grey levels"
