"""Several data sources in one run: registry, lesion-disjoint split, twins, views, type head."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.data import list_samples, split_train_val
from research.multisource import DX_CLASSES, Item, gather, load_source, split_items
from research.typed_head import MALIGNANT_MASK, balanced_weights, type_masks
from research.views import view


def _jpg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), np.uint8)
    cv2.imwrite(str(path), img)


@pytest.fixture
def two_sources(tmp_path):
    """A Kaggle-layout source and a MANIFEST.csv source whose twins name Kaggle files."""
    prim = tmp_path / "skin-lesions"
    for split, n in (("train", 48), ("test", 8)):
        for c in ("benign", "malignant"):
            for i in range(n):
                _jpg(prim / split / c / f"{i + (1000 if c == 'malignant' else 0)}.jpg", i)
    extra = tmp_path / "extra"
    rows = []
    for i in range(60):
        dx = ("nv", "bkl", "bcc", "mel")[i % 4]
        label = "malignant" if dx in ("bcc", "mel") else "benign"
        path = f"{label}/ISIC_{i:07d}.jpg"
        _jpg(extra / path, 100 + i)
        twin = f"skin-lesions/train/benign/{i}.jpg" if dx == "nv" and i < 20 else ""
        rows.append({"path": path, "label": label, "dx": dx, "lesion_id": f"HAM_{i // 2}",
                     "dataset": ("a", "b")[i % 2], "twin": twin})
    (extra / "bad").mkdir()
    with open(extra / "MANIFEST.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return prim, extra


def test_registry_reads_both_kinds(two_sources):
    prim, extra = two_sources
    a, b = load_source(prim), load_source(extra)
    assert len(a) == 96 and all(i.dx == "" for i in a)
    assert len(b) == 60 and {i.dx for i in b} == {"nv", "bkl", "bcc", "mel"}
    assert load_source(extra, "test") == [] and len(load_source(prim, "test")) == 16


def test_split_is_lesion_disjoint_stratified_and_keeps_twins_with_their_file(two_sources):
    prim, extra = two_sources
    g = gather([str(prim), str(extra)], 0.25, seed=3)
    tr, va = g["train"], g["val"]
    assert not {i.lesion for i in tr} & {i.lesion for i in va}
    for dx in ("nv", "bkl", "bcc", "mel"):  # every (source, label, dx) stratum is in both
        assert any(i.dx == dx for i in va) and any(i.dx == dx for i in tr)
    val_paths = {p.path.as_posix().split("skin-lesions/")[-1] for p in va if p.source == "skin-lesions"}
    twins = [i for i in tr + va if i.twin]
    assert twins
    for t in twins:
        assert (t in va) == (t.twin.split("skin-lesions/")[-1] in val_paths), t
    # the primary source keeps the split earlier single-source runs used
    _, old_val = split_train_val(list_samples(prim, "train"), 0.25, 3)
    assert {s.path for s in old_val} == {i.path for i in va if i.source == "skin-lesions"}
    assert len(g["test"]) == 16


def test_bad_manifest_label_names_the_file_and_fix(tmp_path):
    (tmp_path / "MANIFEST.csv").write_text("path,label\nx.jpg,maybe\n")
    with pytest.raises(ValueError, match="x.jpg"):
        load_source(tmp_path)


def test_type_masks_partial_labels_and_balanced_weights():
    items = [Item(Path("a"), 1, "bcc", "s1"), Item(Path("b"), 0, "", "s2"),
             Item(Path("c"), 1, "", "s2"), Item(Path("d"), 1, "", "s2")]
    m = type_masks(items)
    assert m[0].tolist() == [float(c == "bcc") for c in DX_CLASSES]
    assert np.array_equal(m[1], 1 - MALIGNANT_MASK) and np.array_equal(m[2], MALIGNANT_MASK)
    w = balanced_weights(items)
    assert w[0] == pytest.approx(w[1]) and w[2] == pytest.approx(w[1] / 2)
    assert w.mean() == pytest.approx(1.0)


def test_views_are_deterministic_and_vary():
    img = np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)
    a, b = view(img, 2, 0, "x"), view(img, 2, 0, "x")
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.ndim == 3
    assert not np.array_equal(view(img, 3, 0, "x"), a)
    assert view(img, 0) is img


@pytest.mark.slow
def test_activation_cache_computes_each_image_view_once(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from research.featcache import BackboneSpec, activations

    monkeypatch.setenv("SKINLESION_CACHE", str(tmp_path / "cache"))
    items = []
    for i in range(4):
        _jpg(tmp_path / f"{i}.jpg", i)
        items.append(Item(tmp_path / f"{i}.jpg", i % 2))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    spec = BackboneSpec(size=96)
    a, bad = activations(items[:3], 2, spec, batch=8, verbose=False)
    assert a.shape == (3, 2, 6, 6, 96) and bad == []
    assert not np.array_equal(a[0, 0], a[0, 1])  # view 1 is augmented
    store = tmp_path / "cache" / spec.tag / "view0-seed0"
    assert len((store / "paths.txt").read_text().splitlines()) == 3
    b, bad = activations(items + [Item(tmp_path / "bad.jpg", 0)], 2, spec, batch=8, verbose=False)
    assert len((store / "paths.txt").read_text().splitlines()) == 5  # only the new ones ran
    assert np.array_equal(b[:3], a) and len(bad) == 2 and "bad.jpg" in bad[0]
    assert not b[4].any()  # a bad file's rows are zeros


@pytest.fixture
def phone_source(tmp_path):
    """A pad-ufes-phone-like MANIFEST.csv source: PAD codes with ``dx_ham``, several photos per
    patient, Fitzpatrick type for some."""
    folder = tmp_path / "pad-ufes-phone"
    rows = []
    pad = (("bcc", "bcc", "malignant"), ("nev", "nv", "benign"), ("ack", "akiec", "malignant"),
           ("sek", "bkl", "benign"))
    for i in range(48):
        dx, dx_ham, label = pad[i % 4]
        path = f"{label}/PAT_{i // 3}_{i}_{i}.jpg"
        _jpg(folder / path, 300 + i)
        rows.append({"path": path, "label": label, "dx": dx, "dx_ham": dx_ham,
                     "patient_id": f"PAT_{i // 3}", "lesion_id": str(i),
                     "fitspatrick": "2.0" if i % 2 else ""})
    with open(folder / "MANIFEST.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def test_phone_source_maps_types_keeps_patients_whole_and_knows_its_modality(
        two_sources, phone_source):
    prim, extra = two_sources
    items = load_source(phone_source)
    assert {i.dx for i in items} == {"bcc", "nv", "akiec", "bkl"}  # dx_ham wins over dx
    assert {i.modality for i in items} == {"phone"}
    assert {i.fitzpatrick for i in items} == {"2", ""}
    assert {i.modality for i in load_source(prim) + load_source(extra)} == {"dermoscopic"}
    g = gather([str(prim), str(extra), str(phone_source)], 0.15, seed=1)
    patients = lambda part: {i.lesion for i in part if i.source == "pad-ufes-phone"}  # noqa: E731
    assert patients(g["train"]) and patients(g["val"])
    assert not patients(g["train"]) & patients(g["val"])  # a patient is on one side only
    # the phone source's larger validation share (SOURCE_VAL_FRACTIONS) applies
    n_val = sum(i.source == "pad-ufes-phone" for i in g["val"])
    assert n_val >= 0.2 * len(items)


def test_bad_modality_names_the_file_and_fix(tmp_path):
    folder = tmp_path / "src"
    _jpg(folder / "benign" / "a.jpg", 0)
    (folder / "MANIFEST.csv").write_text("path,label,modality\nbenign/a.jpg,benign,webcam\n")
    with pytest.raises(ValueError, match="modality 'webcam'.*fix the row for benign/a.jpg"):
        load_source(folder)


def test_acquisition_views_are_deterministic_and_change_size_colour_and_sharpness():
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 2)
    views = [view(img, k, seed=0, key="x", recipe="acquisition") for k in range(1, 25)]
    again = [view(img, k, seed=0, key="x", recipe="acquisition") for k in range(1, 25)]
    assert all(np.array_equal(a, b) for a, b in zip(views, again))
    means = [v.reshape(-1, 3).mean(0) for v in views]
    assert np.ptp([m[0] / max(m[2], 1) for m in means]) > 0.2  # white balance moves
    assert np.ptp([float(v.mean()) for v in views]) > 20  # exposure moves
    with pytest.raises(ValueError, match="unknown view recipe"):
        view(img, 1, recipe="nope")


def test_guard_eval_measures_each_sources_validation_images(two_sources, phone_source, tmp_path):
    """research/guard_eval.py on a several-source run: one lesion set per source, its validation
    images only (neither the model nor the guard was fitted on them)."""
    import json

    from research.guard_eval import lesion_sets

    prim, extra = two_sources
    run = tmp_path / "run"
    run.mkdir()
    dirs = [str(prim), str(extra), str(phone_source)]
    (run / "config.json").write_text(json.dumps({"data_sources": dirs, "val_fraction": 0.15,
                                                 "seed": 0}))
    sets = lesion_sets(run, [])
    assert list(sets) == ["validation skin-lesions", "validation extra",
                          "validation pad-ufes-phone", "test (leak-free)"]
    g = gather(dirs, 0.15, 0)
    train = {i.path for i in g["train"]}
    assert all(sets[k] and not set(sets[k]) & train for k in sets)
    assert len(sets["test (leak-free)"]) == 16
