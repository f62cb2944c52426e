"""The lesion-type model end to end: partial-label training, one output vector, export, runner.

A tiny conv base stands in for MobileNetV2 (same head, same fixed output layer), trained a
few steps on synthetic lesions where the type is known for half the images and only
benign/malignant for the rest; exported to int8 TFLite and ONNX with a schema-3 manifest;
run by the edge ``Classifier``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_common import synth_lesion
from research.multisource import DX_CLASSES, MALIGNANT_DX, Item

pytestmark = pytest.mark.slow


def _tiny_typed(size: int = 32, seed: int = 0):
    import keras
    from keras import layers

    from research.typed_head import (balanced_weights, full_model, head_layers,
                                  partial_label_loss, type_masks)

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.arange(160) % 2
    x = np.stack([synth_lesion(rng, bool(t), size) for t in y]).astype("float32")
    # half the images know their type (mel / nv), half only their label
    items = [Item(Path(f"{i}"), int(t), ("mel" if t else "nv") if i < 80 else "",
                  "typed" if i < 80 else "binary") for i, t in enumerate(y)]
    base = keras.Sequential([keras.Input((size, size, 3)),
                             layers.Conv2D(8, 3, padding="same"), layers.ReLU(),
                             layers.MaxPooling2D(), layers.Conv2D(16, 3, padding="same"),
                             layers.ReLU(), layers.GlobalAveragePooling2D()], name="base")
    head = head_layers(dropout=0.0)
    model = full_model(base, head, size)
    train = keras.Model(model.input, model.get_layer("types").output)
    train.compile(keras.optimizers.Adam(0.01), partial_label_loss)
    train.fit(x, type_masks(items), sample_weight=balanced_weights(items), batch_size=16,
              epochs=12, verbose=0)
    return model, x, y


@pytest.fixture(scope="module")
def typed_export(tmp_path_factory):
    from edge.manifest import Manifest
    from export.pipeline import export_model
    from tests.fixtures_export import synthetic_arrays
    from research.multisource import DX_NAMES

    model, x, y = _tiny_typed()
    out = tmp_path_factory.mktemp("typed") / "export"
    cal, _ = synthetic_arrays(64, seed=11)
    x_test, y_test = synthetic_arrays(48, seed=12)
    manifest = Manifest(input_height=32, input_width=32, threshold=0.5, classes=DX_CLASSES,
                        class_names=DX_NAMES, malignant_classes=MALIGNANT_DX)
    results = export_model(model, out, ["tflite_int8", "onnx_int8", "onnx_fp32"], cal, manifest,
                           test_images=x_test, test_labels=y_test, min_calibration=64,
                           log=lambda m: None)
    return model, out, results, x_test


def test_output_vector_is_p_malignant_then_type_probabilities(typed_export):
    model, _, _, x = typed_export
    out = model.predict(x.astype("float32"), verbose=0)
    assert out.shape == (len(x), 1 + len(DX_CLASSES))
    np.testing.assert_allclose(out[:, 1:].sum(1), 1.0, atol=1e-5)
    mal = [1 + DX_CLASSES.index(c) for c in MALIGNANT_DX]
    np.testing.assert_allclose(out[:, 0], out[:, mal].sum(1), atol=1e-5)
    assert out[:, 0].std() > 0.05  # trained: outputs vary


def test_binary_only_images_still_learn_the_label(typed_export):
    from core import metrics as M

    model, _, _, _ = typed_export
    rng = np.random.default_rng(5)
    y = np.arange(60) % 2
    x = np.stack([synth_lesion(rng, bool(t), 32) for t in y]).astype("float32")
    out = model.predict(x, verbose=0)
    assert M.roc_auc(y, out[:, 0]) > 0.9
    # the typed half taught mel vs nv: the most likely type follows the label
    top = np.array(DX_CLASSES)[out[:, 1:].argmax(1)]
    assert np.mean(top[y == 1] == "mel") > 0.8 and np.mean(top[y == 0] == "nv") > 0.8


def test_exported_files_carry_the_types_and_the_runner_reads_them(typed_export):
    from edge.classifier import Classifier

    model, out, results, x = typed_export
    assert all(r.passed for r in results), [(r.name, r.status, r.error) for r in results]
    keras_out = model.predict(x.astype("float32"), verbose=0)
    for name in ("model_int8.tflite", "model_int8.onnx"):
        clf = Classifier(out / name)
        assert clf.manifest.classes == DX_CLASSES and clf.manifest.output_size == 8
        vec = clf.raw_outputs(clf.prepare(x[0]))
        assert vec.shape == (8,)
        np.testing.assert_allclose(vec, keras_out[0], atol=0.06)
        probs = clf.manifest.class_probabilities(vec)
        assert set(probs) == set(DX_CLASSES) and abs(sum(probs.values()) - 1) < 0.05


def test_unseen_report_per_group_and_type_without_twins(tmp_path):
    """The shipped int8 file on a small MANIFEST.csv source: groups, types, twins left out."""
    import cv2

    from research.source_metrics import unseen_report
    from tests.fixtures_common import ROOT

    rows = ["path,label,dx,lesion_id,dataset,twin"]
    rng = np.random.default_rng(0)
    for i, (dx, grp) in enumerate([("nv", "a"), ("bkl", "a"), ("bcc", "a"), ("mel", "b"),
                                   ("nv", "b"), ("nv", "b")]):
        label = "malignant" if dx in MALIGNANT_DX else "benign"
        path = tmp_path / label / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), synth_lesion(rng, label == "malignant", 64))
        twin = "train/benign/1.jpg" if i == 5 else ""
        rows.append(f"{label}/{i}.jpg,{label},{dx},L{i},{grp},{twin}")
    (tmp_path / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    rep = unseen_report(ROOT / "models" / "model_int8.tflite", tmp_path)
    assert rep["n"] == 5  # the twin is left out
    assert set(rep["per_group"]) == {"a", "b"} and rep["per_group"]["a"]["n"] == 3
    assert set(rep["per_type"]) == {"nv", "bkl", "bcc", "mel"}
    assert all(0 <= r["called_malignant"] <= 1 for r in rep["per_type"].values())
    own = rep["at_sensitivity_0.90"][tmp_path.name]  # the source's own 0.90-sensitivity point
    assert own["sensitivity"] >= 0.90 and set(own["called_malignant"]) == set(rep["per_type"])


def test_at_sensitivity_is_the_highest_threshold_that_keeps_the_target():
    from research.source_eval import at_sensitivity

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 100), 0, 1)
    dx = ["bcc"] * 40 + ["bkl"] * 30 + ["nv"] * 30
    r = at_sensitivity(y, p, dx, 0.90)
    assert r["sensitivity"] >= 0.90 and np.mean(p[y == 1] > r["threshold"]) < 0.90
    assert r["called_malignant"]["bkl"] == np.mean(p[40:70] >= r["threshold"])
    assert r["specificity"] == np.mean(p[y == 0] < r["threshold"])


def test_train_typed_cli_end_to_end(tmp_path, monkeypatch):
    """Two small sources -> cached views -> head + one top epoch -> an exportable run folder,
    then the leave-one-group-out check; every file named by RunDir exists and is sane."""
    import json

    import cv2

    from research import train_typed
    from train.run import RunDir
    from train.split_file import read_split

    monkeypatch.setenv("SKINLESION_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    prim = tmp_path / "skin-lesions"
    for split, n in (("train", 16), ("test", 4)):
        for c in ("benign", "malignant"):
            (prim / split / c).mkdir(parents=True)
            for i in range(n):
                img = synth_lesion(rng, c == "malignant", 64)
                cv2.imwrite(str(prim / split / c / f"{i + (500 if c == 'malignant' else 0)}.jpg"),
                            img[..., ::-1])
    extra = tmp_path / "extra"
    rows = ["path,label,dx,lesion_id,dataset,twin"]
    for i in range(24):
        dx = ("nv", "bkl", "bcc", "mel")[i % 4]
        label = "malignant" if dx in MALIGNANT_DX else "benign"
        (extra / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(extra / label / f"{i}.jpg"), synth_lesion(rng, label == "malignant", 64))
        rows.append(f"{label}/{i}.jpg,{label},{dx},L{i},{'ab'[i % 2]},")
    (extra / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["--data", str(prim), str(extra), "--out", str(out), "--views", "2",
            "--image-size", "96", "--head-epochs", "3", "--top-epochs", "1"]
    assert train_typed.main(args) == 0
    run = RunDir(out)
    assert run.model_keras.is_file() and run.predictions_npz.is_file()
    cfg, met = run.config(), run.metrics()
    assert cfg["classes"] == list(DX_CLASSES) and len(cfg["data_sources"]) == 2
    assert set(met["val_report"]["per_source"]) == {"skin-lesions", "extra"}
    assert 0 <= met["threshold"] <= 1 and met["n_test"] == 8
    assert (tmp_path / "cache").is_dir()
    split = read_split(run.split_csv)  # export's view of the run's data: the recipe's own split
    assert len(split["test"]) == 8 and {r.source for r in split["val"]} == {"skin-lesions", "extra"}
    from export import convert

    assert convert.main(["--run", str(out), "--formats", "tflite_int8", "--calibration-count",
                         "16", "--no-guard", "--tolerance", "all.min_agreement=0"]) == 0
    man = json.loads((run.export_dir / "manifest.json").read_text())
    assert man["run_id"] == "run" and man["classes"] == list(DX_CLASSES)
    _describe_and_card(run, tmp_path)
    run.split_csv.unlink()  # a several-source run without its split: a one-line error, exit 2
    assert convert.main(["--run", str(out), "--formats", "tflite_int8", "--no-guard"]) == 2
    assert train_typed.main(args + ["--loso-only"]) == 0
    assert set(json.loads(run.loso_json.read_text())) == {"a", "b"}


def _describe_and_card(run, tmp_path) -> None:
    """The recipe's run describes itself (save_run), research/describe.py adds its measured
    sections to RUN/card/, and export/card.py renders both without knowing the recipe."""
    import json

    from export import card
    from research import describe
    from research.typed_run import describe as describe_run
    from train.description import RunDescription

    d = RunDescription.read(run)
    assert d == describe_run(run.path)  # the same from the run folder's files alone
    assert "skin-lesions" in d.data[1] and "extra" in d.data[1]
    run.description_json.unlink()  # a run trained before save_run wrote it
    loso = tmp_path / "loso.json"
    loso.write_text(json.dumps({"a": {"n": 10, "n_malignant": 3, "auc_held_out": 0.7}}))
    assert describe.main(["--run", str(run.path), "--models", str(run.export_dir),
                          "--loso", f"head={loso}"]) == 0
    assert RunDescription.read(run) == d
    assert sorted(p.name for p in run.card_dir.glob("*.json")) == [
        "10-bar.json", "20-sources.json", "30-loso.json", "40-shifts.json"]
    md = tmp_path / "MODEL_CARD.md"
    assert card.main(["--run", str(run.path), "--models", str(run.export_dir),
                      "--out", str(md)]) == 0
    text = md.read_text()
    heads = [ln.split(" (")[0] for ln in text.splitlines() if ln.startswith("## ")]
    assert heads[-5:] == ["## Against the project's bar", "## Per source, modality and lesion type",
                          "## Leave one acquisition group out", "## Simulated dermoscope shifts",
                          "## Reproduce"], heads  # RUN/card/ in file-name order, after the rest
    assert "| head | 0.7000 |" in text and "Lesion-type head on ImageNet MobileNetV2" in text
    assert "python research/describe.py --run" in text
    assert describe.main(["--run", str(run.path), "--models", str(run.export_dir),
                          "--no-shifts"]) == 0  # sections not measured this time are removed
    assert sorted(p.name for p in run.card_dir.glob("*.json")) == ["10-bar.json",
                                                                   "20-sources.json"]


def _tinted(x: np.ndarray) -> np.ndarray:
    """The same synthetic lesions as a colour-swapped, brighter 'phone photo' (a learnable
    modality)."""
    return np.clip(x[..., ::-1].astype(np.float32) * 0.6 + 100, 0, 255).astype(np.uint8)


def test_modality_head_picks_each_images_threshold_in_export_and_runner(typed_export, tmp_path):
    """A modality head on the typed model: export chooses one threshold per modality on each
    file's own outputs (export/threshold.py), the manifest carries them, and the runner labels
    every image with its predicted modality's threshold."""
    import keras

    from edge.classifier import Classifier
    from edge.manifest import Manifest
    from export.pipeline import export_model
    from export.threshold import OperatingRule
    from tests.fixtures_export import synthetic_arrays
    from research.multisource import DX_NAMES
    from research.typed_head import fit_modality_head

    model, _, _, _ = typed_export
    feats = keras.Model(model.input, model.get_layer("features").output)
    x_d, y_d = synthetic_arrays(96, seed=21)
    x_p = _tinted(x_d)
    f = feats.predict(np.concatenate([x_d, x_p]).astype("float32"), verbose=0)
    modality = fit_modality_head(f, np.r_[np.zeros(len(x_d)), np.ones(len(x_p))],
                                 epochs=300, lr=0.05)
    out = model.output
    both = keras.Model(model.input, keras.layers.Concatenate()([out, modality(
        model.get_layer("features").output)]))
    p_phone = both.predict(np.concatenate([x_d, x_p]).astype("float32"), verbose=0)[:, -1]
    assert (p_phone[:len(x_d)] < 0.5).mean() > 0.8 and (p_phone[len(x_d):] >= 0.5).mean() > 0.8
    # two images outside validation that the float model places clearly
    i_d = 48 + int(np.argmin(p_phone[48:len(x_d)]))
    i_p = 48 + int(np.argmax(p_phone[len(x_d) + 48:]))

    x_val = np.concatenate([x_d[:48], x_p[:48]])
    y_val = np.concatenate([y_d[:48], y_d[:48]])
    mods = ["dermoscopic"] * 48 + ["phone"] * 48
    rule = OperatingRule(x_val, y_val, 0.95, 0.0, mods, {"phone": 0.5}, "dermoscopic")
    manifest = Manifest(input_height=32, input_width=32, threshold=0.5, classes=DX_CLASSES,
                        class_names=DX_NAMES, malignant_classes=MALIGNANT_DX,
                        modalities=("dermoscopic", "phone"), modality_index=1 + len(DX_CLASSES))
    cal, _ = synthetic_arrays(64, seed=11)
    res = export_model(both, tmp_path / "m", ["tflite_int8"], cal, manifest, operating=rule,
                       min_calibration=64, log=lambda m: None)
    assert res[0].ok, res[0].error
    thr = res[0].operating.modality_thresholds
    assert set(thr) == {"dermoscopic", "phone"} and thr["dermoscopic"] != thr["phone"]
    assert res[0].operating.threshold == thr["dermoscopic"]

    clf = Classifier(tmp_path / "m" / "model_int8.tflite")
    assert clf.manifest.output_size == 9
    assert clf.manifest.modality_thresholds == thr  # the file's own
    for img, mod in ((x_d[i_d], "dermoscopic"), (x_p[i_p], "phone")):
        p = clf.predict_rgb(img)
        assert p.modality == mod and p.threshold == thr[mod]
        assert p.label == ("malignant" if p.probability >= thr[mod] else "benign")


def test_backbone_layer_names_do_not_depend_on_what_the_process_built_before():
    """A cold feature cache builds extra backbones before the model: the shipped file's bytes
    (its layer names) must not change with that (tests/test_shipped_model.py compares sha256)."""
    from research.featcache import POOL_NAME, BackboneSpec, build_backbone

    names = [build_backbone(BackboneSpec(size=96))[0].layers[-1].name for _ in range(2)]
    assert names == [POOL_NAME, POOL_NAME]
