"""A linear probe as an exportable run folder (train/probe_run.py): the folded Keras graph
gives the scikit-learn probe's probabilities, and the CLI writes a typed run folder."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.test_train_sources import two_sources  # noqa: F401  (fixture)
from train.sources import DX_CLASSES


def test_folded_dense_equals_the_probe_and_sums_the_malignant_classes():
    pytest.importorskip("sklearn")
    import keras

    from train.probe_run import probe_model, type_matrix
    from train.teacher import fit_probe

    rng = np.random.default_rng(0)
    classes = ["bkl", "mel", "nv", "src:0", "src:1"] * 12
    x = rng.normal(size=(60, 1, 5)) * 3 + 2 + np.array([classes.index(c) % 5 for c in classes])[:, None, None]
    clf, names = fit_probe(x, classes, 1.0)
    assert names == ["bkl", "mel", "nv", "src:0", "src:1"]
    inp = keras.Input((2, 2, 3))  # a stand-in encoder: the image flattened to 5 of its pixels
    enc = keras.Model(inp, keras.layers.Lambda(lambda t: keras.ops.reshape(t, (-1, 12))[:, :5])(inp))
    model = probe_model(enc, clf, names, 2)
    imgs = np.zeros((60, 2, 2, 3), np.float32)
    imgs.reshape(60, 12)[:, :5] = x[:, 0]
    out = model.predict(imgs, verbose=0)
    want = clf.predict_proba(x[:, 0]) @ type_matrix(names)
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert out.shape == (60, 1 + len(DX_CLASSES))
    np.testing.assert_allclose(out[:, 0], clf.predict_proba(x[:, 0])[:, [1, 4]].sum(1), atol=1e-5)
    np.testing.assert_allclose(out[:, 1:].sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="neither a lesion type"):
        type_matrix(["cat"])


@pytest.mark.slow
def test_probe_run_cli_writes_a_run_that_combines(two_sources, tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    import keras

    from train import probe_run
    from train.combine_typed import combine
    from train.run import RunDir

    prim, extra = two_sources
    (prim / "train" / "benign" / "999.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # reported, skipped
    monkeypatch.setenv("SKINLESION_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "probe"
    assert probe_run.main(["--data", str(prim), str(extra), "--encoder", "efficientnet_lite0",
                           "--size", "64", "--folds", "3", "--val-fraction", "0.25",
                           "--out", str(out)]) == 0
    assert "validation AUC per source" in capsys.readouterr().out
    run = RunDir(out)
    cfg, met = run.config(), run.metrics()
    assert cfg["model"] == "probe" and cfg["C"] > 0 and cfg["image_size"] == 64
    assert cfg["probe_classes"] == sorted(cfg["probe_classes"]) and "skin-lesions:1" in cfg["probe_classes"]
    assert len(met["bad_files"]) == 1 and "999.jpg" in met["bad_files"][0]
    report = run.report_md.read_text()
    assert 0 <= met["threshold"] <= 1 and "not a medical device" in report
    assert f"Trained on: dermoscopic images from {prim.name}, {extra.name}:" in report
    model = keras.models.load_model(run.model_keras, compile=False)
    pred = np.load(run.predictions_npz)["val"]
    assert pred.shape[1] == 1 + len(DX_CLASSES)
    np.testing.assert_allclose(pred[:, 1:].sum(1), 1.0, atol=1e-5)
    inp = keras.Input((32, 32, 3))
    binary = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))))
    joined = combine(binary, model, 0.5)
    assert joined.input_shape[1:] == (64, 64, 3) and joined.output_shape[1:] == (1 + len(DX_CLASSES),)
    assert json.loads(run.config_json.read_text())["source_types"] == {"0": "nv", "1": "mel"}
    # train/evaluate.py (one output, primary source) refuses it in one line instead of
    # overwriting the several-source evaluation
    from train import evaluate

    capsys.readouterr()
    assert evaluate.main(["--run", str(out), "--gradcam", "0"]) == 2
    err = capsys.readouterr().err
    assert "lesion-type model" in err and len(err.strip().splitlines()) == 1
    assert run.metrics()["val_mean_source_auc"] == met["val_mean_source_auc"]
    # a mix of a benign/malignant run and the probe, exported with its guard, gets a model card
    # with the per-source and per-type validation numbers of the shipped file
    from export import convert, model_card
    from train import combine_typed, train as train_cli

    binary = tmp_path / "binary"
    assert train_cli.main(["--data", str(prim), "--model", "seed_cnn", "--image-size", "32",
                           "--epochs", "1", "--batch-size", "16", "--val-fraction", "0.25",
                           "--out", str(binary), "-q"]) == 0
    capsys.readouterr()
    for bad, word in (([str(binary)], "no lesion-type run"), ([f"{binary}=x", str(out)], "weight"),
                      ([str(tmp_path / "none"), str(out)], "not found")):
        assert combine_typed.main(["--runs", *bad, "--out", str(tmp_path / "m0")]) == 2
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1, err
    mix = tmp_path / "mix"
    assert combine_typed.main(["--runs", f"{binary}=2", str(out), "--out", str(mix)]) == 0
    mcfg = RunDir(mix).config()
    assert mcfg["weights"] == [2.0, 1.0] and mcfg["image_size"] == 64
    rc = convert.main(["--run", str(mix), "--out", str(mix / "export"), "--formats", "tflite_int8",
                       "--min-calibration", "16"])
    assert rc in (0, 1)  # a toy model may miss the int8 tolerance
    card = mix / "MODEL_CARD.md"
    capsys.readouterr()
    loso = {"g1": {"n": 30, "n_malignant": 10, "auc_held_out": 0.61234, "auc_val_held_out": 0.5,
                   "auc_val_seen": 0.75}, "g2": {"n": 20, "n_malignant": 3, "auc_held_out": 0.9}}
    (tmp_path / "loso.json").write_text(json.dumps(loso))
    (tmp_path / "teacher.json").write_text(json.dumps({"members": {"probe:x": {"loso": loso}}}))
    card_args = ["--run", str(mix), "--models", str(mix / "export"), "--data", str(prim),
                 "--out", str(card)]
    for bad, word in ((["head"], "LABEL=FILE"), ([f"p={tmp_path / 'teacher.json'}"], "#MEMBER"),
                      ([f"p={tmp_path / 'nope.json'}"], "nope.json")):
        assert model_card.main([*card_args, "--loso", *bad]) == 2
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1, err
    assert not card.exists()
    assert model_card.main([*card_args, "--loso", f"head={tmp_path / 'loso.json'}",
                            f"probe={tmp_path / 'teacher.json'}#probe:x"]) == 0
    text = card.read_text()
    assert "| g1 (30, 10 malignant) | g2 (20, 3 malignant) |" in text
    assert "| head | 0.6123 (validation 0.5000 held out / 0.7500 seen) | 0.9000 |" in text
    assert "| probe | 0.6123" in text
    assert "## Simulated dermoscope shifts" in text and "| ring | skin-lesions |" in text
    assert "not a medical device" in text.lower() and "Mix of 2 runs" in text and "linear probe" in text
    assert "## Per source, modality and lesion type" in text and "| extra |" in text and "| bcc |" in text
    assert "never trained on" not in text  # HAM-like extra source is trained on: no unseen section
    # the card reproduces the export as it was run (its calibration count included)
    assert f"--formats tflite_int8 --min-calibration 16\n" in text
    assert "calibrated on " in text and "evaluate, export" not in text
    # what the type output says on the source without lesion types (its label-only images)
    assert re.search(r"Most likely type on skin-lesions images without a lesion type: benign: \w+ \d", text)
    assert f"{len(list((extra / 'benign').glob('*.jpg'))) + len(list((extra / 'malignant').glob('*.jpg'))):,}" in text
    # colour constancy: its own cached features, recorded in the run (the manifest carries it)
    sog = tmp_path / "probe-sog"
    assert probe_run.main(["--data", str(prim), str(extra), "--encoder", "efficientnet_lite0",
                           "--size", "64", "--c", "1", "--color-constancy", "shades_of_gray",
                           "--val-fraction", "0.25", "--out", str(sog)]) == 0
    assert RunDir(sog).config()["color_constancy"] == "shades_of_gray" and RunDir(sog).config()["C"] == 1
    assert (tmp_path / "cache" / "efficientnet_lite0-1-64-pool-shades_of_gray").is_dir()
    capsys.readouterr()
    # a ViT or unknown encoder is refused in one line, exit 2
    assert probe_run.main(["--data", str(prim), str(extra), "--encoder", "resnet", "--out",
                           str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "resnet" in err and len(err.strip().splitlines()) == 1
