"""Ensembles (train/ensembling.py, read by export/guard.py and train/gradcam.py): exact in-graph
area resize, mean of members, int8 bias correction of every member; and --split-seed."""
import json

import cv2
import keras
import numpy as np
import pytest

from export.bias_correction import _conv_bn_pairs, _submodels, bias_corrected
from tests.fixtures_common import synth_lesion, train_tiny_model
from train import train as train_cli
from train.ensembling import area_matrix, build_ensemble, members_of

FAST = ["--epochs", "2", "--batch-size", "16", "--patience", "3", "--val-fraction", "0.25", "-q"]


def _lesions(n, size, seed=3):
    rng = np.random.default_rng(seed)
    return np.stack([synth_lesion(rng, bool(i % 2), size) for i in range(n)])


@pytest.mark.parametrize("n_in,n_out", [(224, 128), (224, 160), (48, 32), (64, 64)])
def test_area_matrix_is_cv2_inter_area(n_in, n_out):
    img = np.random.default_rng(0).uniform(0, 255, (n_in, n_in, 3)).astype(np.float32)
    r = area_matrix(n_in, n_out)
    ours = np.einsum("oh,hwc,pw->opc", r, img, r)
    ref = cv2.resize(img, (n_out, n_out), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


@pytest.fixture(scope="module")
def member_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    for size, seed in ((32, 0), (48, 1)):
        train_tiny_model(size, seed=seed).save(root / f"m{size}.keras")
    return root


@pytest.fixture
def two_members(member_files):
    """Fresh copies per test (building an ensemble renames its members)."""
    return [keras.models.load_model(member_files / f"m{s}.keras", compile=False) for s in (32, 48)]


def test_ensemble_is_mean_of_members_on_their_own_sizes(two_members, tmp_path):
    a, b = two_members
    e = build_ensemble([a, b])
    x = _lesions(12, 48)
    xa = np.stack([cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) for i in x])
    pa = a.predict(xa.astype("float32"), verbose=0)
    pb = b.predict(x.astype("float32"), verbose=0)
    pe = e.predict(x.astype("float32"), verbose=0)
    assert pe.std() > 0.05  # outputs vary: the comparison means something
    # uint8 rounding of the cv2 resize is the only difference
    np.testing.assert_allclose(pe, (pa + pb) / 2, atol=2e-2)
    e.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x.astype("float32"), verbose=0), pe, atol=1e-6)
    assert [s for _, s in members_of(loaded)] == [32, 48]


def test_ensemble_rejects_multi_output_member(two_members):
    a, _ = two_members
    inp = keras.Input((32, 32, 3))
    two_out = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inp)))
    with pytest.raises(ValueError, match="one output"):
        build_ensemble([a, two_out])


def test_bias_correction_reaches_every_member(two_members):
    e = build_ensemble(list(two_members))
    before = [bn.moving_mean.numpy().copy() for s, _ in _submodels(e) for _, bn in _conv_bn_pairs(s)]
    assert len(before) == 2  # one conv -> BN pair per tiny member
    copy = bias_corrected(e, _lesions(16, 48))
    after = [bn.moving_mean.numpy() for s, _ in _submodels(copy) for _, bn in _conv_bn_pairs(s)]
    assert all(np.any(a != b) for a, b in zip(before, after))
    still = [bn.moving_mean.numpy() for s, _ in _submodels(e) for _, bn in _conv_bn_pairs(s)]
    assert all(np.array_equal(a, b) for a, b in zip(before, still))  # original untouched


def test_split_seed_lets_seed_variants_share_validation(synthetic_dataset, tmp_path):
    from train.config import TrainConfig
    from train.data import list_samples, split_train_val

    runs = {}
    for seed in (0, 1):
        runs[seed] = tmp_path / f"m32_seed{seed}"
        rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn", "--image-size",
                             "32", "--seed", str(seed), "--split-seed", "0", "--out",
                             str(runs[seed]), *FAST])
        assert rc == 0
    a = TrainConfig.load(runs[0] / "config.json")
    b = TrainConfig.load(runs[1] / "config.json")
    assert (a.seed, b.seed) == (0, 1) and a.val_seed == b.val_seed == 0
    samples = list_samples(synthetic_dataset, "train")
    assert split_train_val(samples, 0.25, b.val_seed) == split_train_val(samples, 0.25, a.val_seed)
    w_a = keras.models.load_model(runs[0] / "model.keras").get_weights()[1]
    w_b = keras.models.load_model(runs[1] / "model.keras").get_weights()[1]
    assert not np.allclose(w_a, w_b)  # a different initialisation: a real second member


def test_a_config_of_the_deleted_teacher_and_ensemble_runs_still_loads(tmp_path):
    """Run folders written before distillation and train/ensemble.py were deleted keep loading."""
    from train.config import TrainConfig

    old = {"model": "ensemble", "image_size": 48, "teacher": "runs/t", "distill_weight": 0.25,
           "teacher_extra": True, "members": ["runs/a", "runs/b"], "seed": 3}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = TrainConfig.load(tmp_path / "config.json")
    assert (cfg.model, cfg.image_size, cfg.seed) == ("ensemble", 48, 3)
    assert not hasattr(cfg, "teacher") and not hasattr(cfg, "members")
