"""Bias correction for int8 exports: a corrected copy, the original untouched, a nested
backbone corrected on the activations that really reach it."""
import keras
import numpy as np

from export.bias_correction import _conv_bn_pairs, _kernel_error, _submodels, bias_corrected
from tests.fixtures_common import synth_lesion
from tests.fixtures_guard import shipped_shape


def test_corrected_copy_leaves_original_untouched(tiny_model_path):
    model = keras.models.load_model(tiny_model_path, compile=False)
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    images = np.stack([synth_lesion(rng, bool(i % 2), 32) for i in range(16)])
    copy = bias_corrected(model, images)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    pairs = _conv_bn_pairs(copy)
    assert len(pairs) == 1  # the tiny CNN has one conv -> BN pair
    conv, bn = pairs[0]
    orig_bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    shift = bn.moving_mean.numpy() - orig_bn.moving_mean.numpy()
    assert np.any(shift != 0)
    # the shift is what int8 rounding of the folded kernel adds on average: same order of size
    err = _kernel_error(conv, bn)
    assert np.abs(err).max() > 0 and np.abs(shift).max() < 255 * np.abs(err).sum()
    x = images.astype("float32")
    p0, p1 = model.predict(x, verbose=0), copy.predict(x, verbose=0)
    assert np.abs(p0 - p1).max() < 0.2  # a small correction, not a different model


def test_a_nested_backbone_is_corrected_as_the_flat_model(tiny_model_path):
    """The shipped model's shape (scaling -> nested backbone -> ``features`` -> head): the
    backbone's conv sees the scaled pixels that feed the backbone in the outer graph, so its
    BN shift is the flat model's (raw pixels, the backbone's own Input, would make it 255x)."""
    flat = keras.models.load_model(tiny_model_path, compile=False)
    nested = shipped_shape(flat)
    rng = np.random.default_rng(0)
    images = np.stack([synth_lesion(rng, bool(i % 2), 32) for i in range(16)])
    before = nested.get_layer("backbone").get_weights()
    copy = bias_corrected(nested, images)
    assert [m.name for m, _ in _submodels(copy)] == [nested.name, "backbone"]
    (_, bn), = _conv_bn_pairs(copy.get_layer("backbone"))
    (_, flat_bn), = _conv_bn_pairs(bias_corrected(flat, images))
    assert np.any(bn.moving_mean.numpy() != _conv_bn_pairs(nested.get_layer("backbone"))[0][1]
                  .moving_mean.numpy())
    np.testing.assert_allclose(bn.moving_mean.numpy(), flat_bn.moving_mean.numpy(),
                               rtol=1e-5, atol=1e-6)
    for a, b in zip(before, nested.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)  # the original is untouched
