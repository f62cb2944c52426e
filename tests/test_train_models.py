"""Model builders: shapes, built-in input scaling, fine-tuning switch, offline weights."""
import numpy as np
import pytest

from train import models


def test_seed_cnn_shape_and_scaling():
    m = models.build_model("seed_cnn", 64)
    assert m.input_shape == (None, 64, 64, 3) and m.output_shape == (None, 1)
    assert m.layers[0].name == "scale"  # raw pixels in, the model scales them
    p = m.predict(np.zeros((2, 64, 64, 3), "float32"), verbose=0)
    assert ((p > 0) & (p < 1)).all()


def test_unknown_model_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("resnet", 64)


@pytest.mark.parametrize("alpha", [0.35, 1.0])
def test_mobilenetv2_loads_local_imagenet_weights(alpha):
    try:
        path = models.find_imagenet_weights(alpha)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    m = models.build_model("mobilenetv2", 96, alpha=alpha)
    base = m.get_layer(models.BACKBONE_NAME)
    assert not base.trainable and path.is_file()
    # ImageNet weights, not random init: the first conv kernel matches the file
    import h5py

    with h5py.File(path) as f:
        k = np.array(f["Conv1"]["Conv1"]["kernel:0"] if "kernel:0" in f["Conv1"]["Conv1"]
                     else f["Conv1"]["Conv1"][list(f["Conv1"]["Conv1"].keys())[0]])
    np.testing.assert_allclose(base.get_layer("Conv1").get_weights()[0], k)
    n = models.unfreeze_top(m, 20)
    assert 0 < n <= 20 and base.trainable
    assert not any(l.trainable for l in base.layers if "BN" in l.name or "bn" in l.name)


def test_missing_weights_message(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "_WEIGHT_FILE", "nonexistent_{alpha}.h5")
    with pytest.raises(FileNotFoundError, match="SKINLESION_WEIGHTS_DIR"):
        models.find_imagenet_weights(0.35)
