"""Bias correction for int8 exports: a corrected copy, the original untouched."""
import keras
import numpy as np

from export.bias_correction import _conv_bn_pairs, _kernel_error, bias_corrected
from tests.fixtures_common import synth_lesion


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
