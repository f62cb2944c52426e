"""Dataset discovery, splits and bad-file handling."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from train import data as D


def test_resolve_prefers_flag_then_env(synthetic_dataset, monkeypatch, tmp_path):
    assert D.resolve_data_dir(synthetic_dataset) == synthetic_dataset.resolve()
    monkeypatch.setenv(D.DATA_ENV, str(synthetic_dataset))
    assert D.resolve_data_dir(None) == synthetic_dataset.resolve()
    with pytest.raises(D.DatasetNotFound) as e:
        D.resolve_data_dir(tmp_path / "nope")
    msg = str(e.value)
    assert "nope" in msg and "kaggle.com" in msg and "\n" not in msg


def test_class_folders_case_insensitive(tmp_path):
    for name in ("Benign", "MALIGNANT"):
        (tmp_path / "Train" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "Train" / name / "1.png"), np.zeros((8, 8, 3), np.uint8))
    s = D.list_samples(tmp_path, "train")
    assert [x.label for x in s] == [0, 1]


def test_leaked_files_excluded_only_from_the_kaggle_set(tmp_path):
    """The 27 known duplicates leave the Kaggle set's test split, and only that set's."""
    img = np.zeros((8, 8, 3), np.uint8)
    for c in ("benign", "malignant"):
        (tmp_path / "train" / c).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / c / "1.jpg"), img)
    for rel in ("test/malignant/508.jpg", "test/malignant/507.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), img)
    assert len(D.LEAKED_TEST_FILES) == 27
    assert len(D.list_samples(tmp_path, "test")) == 2  # another dataset: nothing dropped
    assert D.leak_note(tmp_path) == ""
    for rel in D.LEAKED_TEST_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), img)
    names = [s.path.name for s in D.list_samples(tmp_path, "test")]
    assert names == ["508.jpg"]
    assert len(D.list_samples(tmp_path, "test", exclude_leaked=False)) == 28
    assert "27 test images" in D.leak_note(tmp_path)


def _images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        cv2.imwrite(str(folder / n), np.full((8, 8, 3), 50, np.uint8))


def test_any_class_folders_sorted_and_split_when_flat(tmp_path):
    for c, n in (("cat", 10), ("dog", 5), ("fox", 1)):
        _images(tmp_path / c, [f"{c}{i}.png" for i in range(n)])
    assert D.class_names(tmp_path) == ("cat", "dog", "fox")
    tr, te = D.list_samples(tmp_path, "train"), D.list_samples(tmp_path, "test")
    assert not {s.path for s in tr} & {s.path for s in te}
    assert [sum(s.label == k for s in te) for k in range(3)] == [2, 1, 0]  # 20% per class
    assert len(tr) + len(te) == 16
    assert [s.path for s in D.list_samples(tmp_path, "test")] == [s.path for s in te]


def test_manifest_csv_with_and_without_split(tmp_path):
    _images(tmp_path / "img", [f"{i}.png" for i in range(6)])
    rows = ["path,label,split"] + [f"img/{i}.png,{'ab'[i % 2]},{'test' if i < 2 else 'train'}"
                                   for i in range(6)]
    (tmp_path / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    assert D.class_names(tmp_path) == ("a", "b")
    assert sorted(s.path.name for s in D.list_samples(tmp_path, "test")) == ["0.png", "1.png"]
    (tmp_path / "MANIFEST.csv").write_text("file,class\nimg/0.png,a\n")
    with pytest.raises(D.DatasetError, match="needs the columns path,label"):
        D.class_names(tmp_path)


def test_fewer_than_two_classes_or_an_empty_class_folder_is_an_error(tmp_path):
    _images(tmp_path / "train" / "cat", ["1.png"])
    with pytest.raises(D.DatasetError, match="1 class"):
        D.class_names(tmp_path)
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(D.DatasetError, match="dog: class folder holds no image"):
        D.class_names(tmp_path)


def test_a_named_positive_class_makes_it_the_second_label(tmp_path):
    for c in ("cat", "dog"):
        _images(tmp_path / "train" / c, ["1.png"])
    assert D.task_labels(tmp_path, "cat") == (("dog", "cat"), "cat")
    assert D.task_labels(tmp_path) == (("cat", "dog"), "")
    with pytest.raises(D.DatasetError, match="--positive 'fox'"):
        D.task_labels(tmp_path, "fox")


def test_split_is_deterministic_stratified_and_grouped(synthetic_dataset):
    s = D.list_samples(synthetic_dataset, "train")
    a1, b1 = D.split_train_val(s, 0.25, seed=3, group_size=4)
    a2, b2 = D.split_train_val(s, 0.25, seed=3, group_size=4)
    assert [x.path for x in b1] == [x.path for x in b2]
    assert not set(x.path for x in a1) & set(x.path for x in b1)
    assert len(a1) + len(b1) == len(s)
    assert {x.label for x in b1} == {0, 1}  # both classes in validation
    for label in (0, 1):  # whole blocks of 4 consecutive numbers go together
        nums = sorted(x.number for x in s if x.label == label)
        blocks = [set(nums[i:i + 4]) for i in range(0, len(nums), 4)]
        val_nums = {x.number for x in b1 if x.label == label}
        assert all(b <= val_nums or not (b & val_nums) for b in blocks)
    _, b3 = D.split_train_val(s, 0.25, seed=4, group_size=4)
    assert [x.path for x in b3] != [x.path for x in b1]


def _bad_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ok = np.full((20, 20, 3), 120, np.uint8)
    cv2.imwrite(str(folder / "good.jpg"), ok)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    full = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2])
    cv2.imwrite(str(folder / "gray.png"), np.full((20, 20), 99, np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), np.full((20, 20, 4), 200, np.uint8))
    return sorted(folder.iterdir())


def test_bad_files_reported_and_skipped(tmp_path, capsys):
    _bad_files(tmp_path / "train" / "benign")
    _images(tmp_path / "train" / "malignant", ["m.png"])
    samples = D.list_samples(tmp_path, "train")
    x, y, bad = D.load_arrays(samples, 16)
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.uint8  # good, gray, rgba, m
    assert len(bad) == 3
    err = capsys.readouterr().err
    for name in ("empty.jpg", "text.jpg", "truncated.jpg"):
        assert name in err
    kept = [s.path.name for s in samples if not any(s.path.name in b for b in bad)]
    gray = x[kept.index("gray.png")]
    assert (gray == 99).all()  # grayscale converted to three equal channels


def test_class_weights_balance():
    w = D.class_weights(np.array([0, 0, 0, 1]))
    assert w[0] * 3 == pytest.approx(w[1] * 1)


def test_dataset_pipeline_batches(synthetic_dataset):
    x, y, _ = D.load_arrays(D.list_samples(synthetic_dataset, "train"), 32)
    ds = D.make_dataset(x, y, 8, training=True, seed=0)
    xb, yb = next(iter(ds))
    assert tuple(xb.shape) == (8, 32, 32, 3) and tuple(yb.shape) == (8, 1)
    assert float(xb.numpy().max()) > 1.0  # raw 0..255 pixels; the model scales them


def test_real_dataset_layout(real_data_dir):
    tr = D.list_samples(real_data_dir, "train")
    te = D.list_samples(real_data_dir, "test")
    assert len(tr) == 2636 and len(te) == 660 - 27


def test_split_of_non_numeric_names_is_the_same_in_every_process(tmp_path):
    """Python salts str hashes per process: a split keyed on hash(stem) changed run to run."""
    import subprocess
    import sys

    for label in ("benign", "malignant"):
        d = tmp_path / "train" / label
        d.mkdir(parents=True)
        for i in range(40):
            cv2.imwrite(str(d / f"ISIC_{label[0]}{i:03d}x.png"), np.zeros((8, 8, 3), np.uint8))
    code = ("import sys; from train import data as D; "
            "t, v = D.split_train_val(D.list_samples(sys.argv[1], 'train'), 0.15, seed=0); "
            "print(sorted(s.path.name for s in v))")
    root = Path(__file__).resolve().parents[1]
    outs = {subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=root, check=True,
                           capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout
            for seed in (1, 2, 3)}
    assert len(outs) == 1
    assert D.Sample(Path("ISIC_0024306.jpg"), 0).number == 9821349  # zlib.crc32, fixed forever
