"""Ensembles: exact in-graph area resize, mean of members, CLI run folder, evaluate and export."""
import json

import cv2
import keras
import numpy as np
import pytest

from export.bias_correction import _conv_bn_pairs, _submodels, bias_corrected
from tests.fixtures_common import synth_lesion, train_tiny_model
from train import ensemble as ensemble_cli
from train import evaluate as evaluate_cli
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
    """Fresh copies per test, as train/ensemble.py loads them from run folders."""
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


@pytest.fixture(scope="module")
def member_runs(synthetic_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("ens_runs")
    for size in (32, 48):
        rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn",
                             "--image-size", str(size), "--out", str(root / f"m{size}"), *FAST])
        assert rc == 0
    return root


def test_cli_builds_evaluates_and_exports(member_runs, synthetic_dataset, capsys):
    out = member_runs / "ens"
    rc = ensemble_cli.main([str(member_runs / "m32"), str(member_runs / "m48"), "--out", str(out)])
    assert rc == 0 and "next: python train/evaluate.py" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "ensemble" and cfg["image_size"] == 48 and len(cfg["members"]) == 2
    summary = json.loads((out / "train_summary.json").read_text())
    assert [m["image_size"] for m in summary["members"]] == [32, 48]

    assert evaluate_cli.main(["--run", str(out), "--bootstrap", "20", "--gradcam", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "ensemble" and (out / "gradcam.png").is_file()
    assert "Wilson lower bound" in metrics["threshold_rule"]

    from export import convert

    rc = convert.main(["--run", str(out), "--out", str(out / "export"),
                       "--formats", "tflite_int8,onnx_fp32", "--min-calibration", "16"])
    report = json.loads((out / "export" / "export_report.json").read_text())
    rows = {r["format"]: r for r in report["rows"]}
    assert rows["onnx_fp32"]["status"] == "ok", rows["onnx_fp32"]
    assert rows["tflite_int8"]["ok"] and rc in (0, 1)  # a toy model may miss the int8 tolerance

    from export import model_card

    card = out / "MODEL_CARD.md"
    assert model_card.main(["--run", str(out), "--models", str(out / "export"),
                            "--data", str(synthetic_dataset), "--out", str(card)]) == 0
    text = card.read_text()
    assert "not a medical device" in text.lower() and "Ensemble of 2 runs" in text
    assert str(member_runs / "m32") in text and "Wilson lower bound" in text
    assert "| ROC AUC |" in text and "ECE" in text
    # every count is read from the data and the run, none typed (the card once said 2,636 / 633)
    from train.data import list_samples

    n_train = len(list_samples(synthetic_dataset, "train"))
    assert f"{n_train:,} training images" in text and f"validation ({metrics['n_val']} images)" in text
    assert f"same {report['n_test']} images" in text
    from edge.quality import FITTED_ON  # the gate's own record of what it was fitted on

    rest = text.replace(FITTED_ON, "")
    assert "2,636" not in rest and "633" not in rest and "400 images" not in rest


def test_cli_refuses_members_with_different_validation_splits(member_runs, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.keras").write_bytes((member_runs / "m32" / "model.keras").read_bytes())
    cfg = json.loads((member_runs / "m32" / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "seed": 7}))
    rc = ensemble_cli.main([str(member_runs / "m48"), str(other), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and str(other) in err and "seed" in err and len(err.strip().splitlines()) == 1


def test_cli_names_a_missing_member(member_runs, tmp_path, capsys):
    rc = ensemble_cli.main([str(member_runs / "m32"), str(tmp_path / "nope"), "--out",
                            str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope/model.keras not found" in err


def test_distillation_from_an_ensemble_teacher(member_runs, synthetic_dataset, capsys):
    from train.config import TrainConfig
    from train.data import list_samples, load_arrays, split_train_val
    from train.distill import soft_targets, teacher_probabilities

    teacher = member_runs / "ens"
    if not (teacher / "model.keras").exists():
        assert ensemble_cli.main([str(member_runs / "m32"), str(member_runs / "m48"),
                                  "--out", str(teacher)]) == 0
    cfg = TrainConfig(teacher=str(teacher), distill_weight=0.25, val_fraction=0.25)
    tr, _ = split_train_val(list_samples(synthetic_dataset, "train"), 0.25, 0)
    _, y, _ = load_arrays(tr, 32, verbose=False)
    p = teacher_probabilities(teacher, tr)
    t = soft_targets(cfg, tr, y)
    np.testing.assert_allclose(t, 0.75 * y + 0.25 * p, atol=1e-6)
    assert p.std() > 0  # the teacher's opinion varies, so the targets are not the labels

    out = member_runs / "student"
    rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn", "--image-size",
                         "32", "--teacher", str(teacher), "--out", str(out), *FAST])
    assert rc == 0 and "distillation: teacher" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["teacher"] == str(teacher)


def test_teacher_with_another_split_is_refused(member_runs, synthetic_dataset, tmp_path, capsys):
    rc = train_cli.main(["--data", str(synthetic_dataset), "--image-size", "32", "--seed", "5",
                         "--teacher", str(member_runs / "m32"), "--out", str(tmp_path / "s"), *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and "seed" in err and "m32" in err and len(err.strip().splitlines()) == 1


def test_split_seed_lets_seed_variants_share_validation(member_runs, synthetic_dataset, tmp_path):
    from train.config import TrainConfig
    from train.data import list_samples, split_train_val

    out = member_runs / "m32_seed1"
    rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn", "--image-size",
                         "32", "--seed", "1", "--split-seed", "0", "--out", str(out), *FAST])
    assert rc == 0
    a = TrainConfig.load(member_runs / "m32" / "config.json")
    b = TrainConfig.load(out / "config.json")
    assert (a.seed, b.seed) == (0, 1) and a.val_seed == b.val_seed == 0
    samples = list_samples(synthetic_dataset, "train")
    assert split_train_val(samples, 0.25, b.val_seed) == split_train_val(samples, 0.25, a.val_seed)
    w_a = keras.models.load_model(member_runs / "m32" / "model.keras").get_weights()[1]
    w_b = keras.models.load_model(out / "model.keras").get_weights()[1]
    assert not np.allclose(w_a, w_b)  # a different initialisation: a real second member
    assert ensemble_cli.main([str(member_runs / "m32"), str(out), "--out",
                              str(tmp_path / "seeds")]) == 0
    assert TrainConfig.load(tmp_path / "seeds" / "config.json").val_seed == 0


def test_rank_ensembles_scores_every_mix_on_validation(member_runs, synthetic_dataset, tmp_path,
                                                        capsys):
    from train import rank_ensembles as rank_cli
    from train.evaluation import evaluate_run
    from core.metrics import roc_auc

    runs = [str(member_runs / "m32"), str(member_runs / "m48")]
    out = tmp_path / "rank.json"
    assert rank_cli.main([*runs, "--data", str(synthetic_dataset), "--json", str(out)]) == 0
    assert "3 mixes of 2 runs" in capsys.readouterr().out
    mixes = json.loads(out.read_text())
    assert sorted(len(m["runs"]) for m in mixes) == [1, 1, 2]
    assert [m["val_auc"] for m in mixes] == sorted((m["val_auc"] for m in mixes), reverse=True)
    assert mixes[0]["in_band"] and all(m["in_band"] == (m["val_auc"] >= mixes[0]["val_auc"] - 0.003)
                                       for m in mixes)
    # a single run's score is what train/evaluate.py computes on the same validation split
    val = evaluate_run(runs[0], str(synthetic_dataset), n_boot=5).val
    single = next(m for m in mixes if m["runs"] == [runs[0]])
    assert single["val_auc"] == pytest.approx(roc_auc(val.y, val.p), abs=1e-9)

    assert rank_cli.main([runs[0], runs[0]]) == 2
    assert "listed twice" in capsys.readouterr().err
