"""Dataset discovery (any image classes), leak-free splits and a cached ``tf.data`` pipeline.

A dataset folder ``DIR`` is one of (first match wins):
``DIR/train/<class>/`` and ``DIR/test/<class>/`` (class = folder name, two or more);
``DIR/MANIFEST.csv`` with ``path,label`` (paths relative to ``DIR``) and optionally ``split``
(``train``/``test``); or flat ``DIR/<class>/`` folders. Without a ``split`` (CSV or folders),
a seeded, stratified ``TEST_FRACTION`` of each class is the test split. The label index is
the position in ``class_names(DIR)``: ``benign, malignant`` for the skin-lesion sets, else the
names sorted.

Images are decoded with ``edge.images.load_rgb`` and sized with ``edge.preprocess.fit_to_input``:
the very functions the edge runner uses, so training and deployment see identical pixels.
Bad files (truncated, empty, not an image) are reported by name and skipped up front; they
can never crash a run mid-epoch.

Example:
    >>> root = resolve_data_dir(None)                                   # doctest: +SKIP
    >>> train, val = split_train_val(list_samples(root, "train"), 0.15, seed=0)  # doctest: +SKIP
    >>> x, y, bad = load_arrays(train, image_size=128)                  # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
import random
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.images import ImageError, is_image_file, load_rgb
from edge.preprocess import fit_to_input

CLASSES = ("benign", "malignant")  # the skin-lesion sets' order; their model outputs P(malignant)
MANIFEST_CSV = "MANIFEST.csv"
TEST_FRACTION = 0.2  # of each class, when the data has no test split of its own
SPLIT_SEED = 0
DATA_ENV = "SKINLESION_DATA"
KAGGLE_URL = "https://www.kaggle.com/datasets/fanconic/skin-cancer-malignant-vs-benign"
ROOT = Path(__file__).resolve().parents[1]

# Test images that are the same image or the same lesion as a training image (found by the
# dataset's curators; see shared/datasets/skin-lesions/README.md). Excluded by default.
LEAKED_TEST_FILES = tuple(f"test/{p}.jpg" for p in (
    "malignant/507 malignant/817 benign/335 malignant/322 benign/1180 malignant/1089 "
    "benign/880 malignant/421 malignant/318 malignant/375 malignant/402 malignant/303 "
    "malignant/381 malignant/338 malignant/310 benign/1479 malignant/356 malignant/424 "
    "malignant/1347 malignant/679 benign/1019 malignant/276 malignant/317 malignant/419 "
    "benign/958 benign/773 malignant/399").split())


class DatasetNotFound(FileNotFoundError):
    """No dataset where we looked; the message lists the places and how to get the data."""


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is; the message names the file and the fix."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into the dataset's class names (class_names)

    @property
    def number(self) -> int:
        """Kaggle file number (consecutive numbers are often the same lesion)."""
        try:
            return int(self.path.stem)
        except ValueError:
            # crc32, not hash(): str hashes are salted per process, which would make the
            # "deterministic" split differ between runs for non-numeric file names.
            return zlib.crc32(self.path.stem.encode("utf-8")) % 10**9


def candidate_dirs(arg: str | Path | None) -> list[Path]:
    if arg:
        return [Path(arg)]
    env = os.environ.get(DATA_ENV)
    return ([Path(env)] if env else []) + [ROOT / "data" / "skin-lesions",
                                           ROOT.parent / "shared" / "datasets" / "skin-lesions"]


def resolve_data_dir(arg: str | Path | None = None) -> Path:
    """``--data``, else ``$SKINLESION_DATA``, else ``data/skin-lesions``, else ``../shared/...``."""
    tried = candidate_dirs(arg)
    for d in tried:
        if d.is_dir() and (_find(d, "train") or (d / MANIFEST_CSV).is_file() or
                           len(_folders(d)) >= 2):
            return d.resolve()
    raise DatasetNotFound(
        "skin-lesion dataset not found (looked in: " + ", ".join(str(d) for d in tried) +
        f"); download it from {KAGGLE_URL}, unzip to data/skin-lesions with train/ and test/ "
        f"holding benign/ and malignant/, or pass --data DIR / set {DATA_ENV}")


def _find(parent: Path, name: str) -> Path | None:
    """Case-insensitive child folder lookup."""
    if not parent.is_dir():
        return None
    for child in parent.iterdir():
        if child.is_dir() and child.name.lower() == name:
            return child
    return None


def _folders(parent: Path) -> list[Path]:
    """Visible sub-folders (class folders candidates), sorted by name."""
    if not parent.is_dir():
        return []
    return sorted((d for d in parent.iterdir() if d.is_dir() and not d.name.startswith(
        (".", "_"))), key=lambda d: d.name)


def ordered(names) -> tuple[str, ...]:
    """Class names in label-index order: ``benign, malignant`` for the skin-lesion sets, else
    sorted.

    >>> ordered(["malignant", "benign"]), ordered(["nv", "bkl", "mel"])
    (('benign', 'malignant'), ('bkl', 'mel', 'nv'))
    """
    names = set(names)
    return CLASSES if {n.lower() for n in names} == set(CLASSES) else tuple(sorted(names))


def _layout(data_dir: Path) -> str:
    if _find(data_dir, "train") is not None:
        return "split"
    return "csv" if (data_dir / MANIFEST_CSV).is_file() else "flat"


def _csv_rows(data_dir: Path) -> list[tuple[Path, str, str]]:
    """``(image path, label, split or "")`` of ``DIR/MANIFEST.csv``; ``DatasetError`` if malformed."""
    import csv

    path = data_dir / MANIFEST_CSV
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or ()):
            raise DatasetError(f"{path}: needs the columns path,label (and optionally split); "
                               f"found {','.join(reader.fieldnames or ()) or 'no header'}")
        rows = [(data_dir / r["path"].strip(), r["label"].strip(),
                 (r.get("split") or "").strip().lower()) for r in reader]
    for p, label, split in rows:
        if not label or split not in ("", "train", "test"):
            raise DatasetError(f"{path}: row for {p.name}: label {label!r}, split {split!r}; "
                               "every row needs a label, and split is train, test or empty")
    return rows


def class_names(data_dir: str | Path) -> tuple[str, ...]:
    """The dataset's class names in label-index order (``ordered``).

    ``DatasetError`` names the folder and the fix when there are fewer than two classes or a
    class folder holds no image.
    """
    data_dir = Path(data_dir)
    layout = _layout(data_dir)
    if layout == "csv":
        names = {label for _, label, _ in _csv_rows(data_dir)}
    else:
        root = _find(data_dir, "train") if layout == "split" else data_dir
        folders = _folders(root)
        for d in folders:
            if not any(p.is_file() and is_image_file(p) for p in d.rglob("*")):
                raise DatasetError(f"{d}: class folder holds no image; add images or remove "
                                   "the folder")
        names = {d.name for d in folders}
    if len(names) < 2:
        raise DatasetError(f"{data_dir}: {len(names)} class(es) found ({', '.join(sorted(names))}); "
                           "a classifier needs two or more: one folder of images per class, "
                           f"in train/ and test/, directly in {data_dir.name}/, or a "
                           f"{MANIFEST_CSV} with path,label")
    return ordered(names)


def task_labels(data_dir: str | Path, positive: str = "") -> tuple[tuple[str, ...], str]:
    """(class names in label-index order, the positive class or ``""``) of a training run.

    A named positive class (``--positive``; the skin-lesion sets name ``malignant``) of two
    makes a sigmoid model with the labels ``(other, positive)``; otherwise a softmax over
    ``class_names(data_dir)``. ``DatasetError`` when ``positive`` is not one of them.
    """
    names = class_names(data_dir)
    positive = positive or ("malignant" if names == CLASSES else "")
    if positive and positive not in names:
        raise DatasetError(f"--positive {positive!r} is not a class of {data_dir} (classes: "
                           f"{', '.join(names)})")
    if positive and len(names) == 2:
        names = tuple(n for n in names if n != positive) + (positive,)
    return names, positive


def provenance(data_dir: str | Path, classes, n_images: int | None = None) -> str:
    """The manifest's ``trained_on`` line for a dataset folder: the skin-lesion set's own line,
    else the first line of the folder's README, else its name and classes.
    """
    from edge.manifest import TRAINED_ON

    data_dir = Path(data_dir)
    if is_kaggle_skin_lesions(data_dir):
        return TRAINED_ON
    count = "" if n_images is None else f"; {n_images} training images"
    for name in ("README.md", "README.txt", "README"):
        readme = data_dir / name
        if readme.is_file():
            first = next((ln.strip().lstrip("#").strip() for ln in
                          readme.read_text(errors="replace").splitlines() if ln.strip()), "")
            if first:
                return f"{first} ({data_dir.name}: {', '.join(classes)}{count})"
    return f"{data_dir.name}: {len(classes)} classes ({', '.join(classes)}){count}"


def is_kaggle_skin_lesions(data_dir: str | Path) -> bool:
    """True for the Kaggle skin-lesion set: every one of its 27 leaked test files is there."""
    data_dir = Path(data_dir)
    return all((data_dir / rel).is_file() for rel in LEAKED_TEST_FILES)


def leak_note(data_dir: str | Path) -> str:
    """The line a tool prints when it leaves the Kaggle set's leaked test images out (``""``
    for any other dataset)."""
    if not is_kaggle_skin_lesions(data_dir):
        return ""
    return (f"note: {Path(data_dir).name} is the Kaggle skin-lesion set: its "
            f"{len(LEAKED_TEST_FILES)} test images that duplicate training images are left out "
            "of its test split (train/data.py LEAKED_TEST_FILES)")


def _leak_list(data_dir: Path) -> set[str]:
    """The Kaggle set's leaked test files (lower case, relative), for that set only."""
    return {e.lower() for e in LEAKED_TEST_FILES} if is_kaggle_skin_lesions(data_dir) else set()


def _found(data_dir: Path, layout: str, classes: tuple[str, ...]) -> list[tuple[Path, int, str]]:
    """``(path, label, split or "")`` of every image of the dataset."""
    index = {c.lower(): i for i, c in enumerate(classes)}
    if layout == "csv":
        return [(p, index[label.lower()], split) for p, label, split in _csv_rows(data_dir)
                if label.lower() in index]
    out = []
    splits = ("train", "test") if layout == "split" else ("",)
    for split in splits:
        root = _find(data_dir, split) if split else data_dir
        for d in _folders(root) if root is not None else []:
            if d.name.lower() in index:
                out += [(p, index[d.name.lower()], split) for p in d.rglob("*")
                        if p.is_file() and is_image_file(p)]
    return out


def _assign_test(items: list[tuple[Path, int, str]], data_dir: Path) -> list[tuple[Path, int, str]]:
    """Give unsplit images a split: a seeded, stratified ``TEST_FRACTION`` of each class is test."""
    if all(split for _, _, split in items):
        return items
    rng, out = random.Random(SPLIT_SEED), [i for i in items if i[2]]
    for label in sorted({i[1] for i in items}):
        todo = sorted((i for i in items if not i[2] and i[1] == label),
                      key=lambda i: i[0].relative_to(data_dir).as_posix())
        rng.shuffle(todo)
        n_test = round(len(todo) * TEST_FRACTION) if len(todo) >= 2 else 0
        out += [(p, y, "test" if k < n_test else "train") for k, (p, y, _) in enumerate(todo)]
    return out


def list_samples(data_dir: str | Path, split: str = "train", exclude_leaked: bool = True,
                 exclude: tuple[str, ...] = (), classes: tuple[str, ...] | None = None,
                 ) -> list[Sample]:
    """Image files of one split, sorted by class then file number.

    ``classes`` (default ``class_names(data_dir)``) gives the label indices; folders of other
    names are left out. ``exclude`` holds paths relative to ``data_dir`` (e.g.
    ``test/benign/335.jpg``); with ``exclude_leaked`` the 27 known train/test duplicates of
    the Kaggle skin-lesion set (only that set) are dropped from ``test``.
    """
    data_dir = Path(data_dir)
    layout = _layout(data_dir)
    if layout == "flat" and not _folders(data_dir):
        return []
    classes = classes or class_names(data_dir)
    items = _assign_test(_found(data_dir, layout, tuple(classes)), data_dir)
    drop = {e.lower() for e in exclude} | (_leak_list(data_dir) if exclude_leaked and
                                           split == "test" else set())
    out = [Sample(p, y) for p, y, sp in items if sp == split and
           _relative(p, data_dir).lower() not in drop]
    return sorted(out, key=lambda s: (s.label, s.number, s.path.name))


def _relative(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def split_train_val(samples: list[Sample], val_fraction: float = 0.15, seed: int = 0,
                    group_size: int = 8) -> tuple[list[Sample], list[Sample]]:
    """Deterministic, stratified, lesion-aware split.

    Within each class, files sorted by number are cut into blocks of ``group_size``
    consecutive files (several photos of one lesion have consecutive numbers); whole blocks
    are drawn at random (seeded) for validation until ``val_fraction`` of the class is reached.
    """
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({s.label for s in samples}):
        cls = sorted((s for s in samples if s.label == label), key=lambda s: s.number)
        blocks = [cls[i : i + group_size] for i in range(0, len(cls), group_size)]
        order = list(range(len(blocks)))
        rng.shuffle(order)
        n_val = max(1, math.ceil(len(blocks) * val_fraction)) if len(blocks) > 1 else 0
        chosen = set(order[:n_val])
        for i, b in enumerate(blocks):
            (val if i in chosen else train).extend(b)
    return train, val


def _load_one(sample: Sample, size: int, color_constancy: str = "none", border: str = "none"):
    try:
        return fit_to_input(load_rgb(sample.path), size, size, color_constancy, border), None
    except ImageError as e:
        return None, str(e)


def load_arrays(samples: list[Sample], image_size: int, workers: int = 4,
                verbose: bool = True, color_constancy: str = "none", border: str = "none",
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and size every sample: ``(x uint8 [N,S,S,3], y int32 [N], bad messages)``.

    ``color_constancy`` is the run's, ``border`` the export's (``edge.preprocess.apply_corrections``).

    Unreadable files are skipped and reported (one line each, on stderr when ``verbose``).
    """
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda s: _load_one(s, image_size, color_constancy, border),
                                samples))
    xs, ys, bad = [], [], []
    for s, (img, err) in zip(samples, results):
        if err:
            bad.append(err)
            if verbose:
                print(f"skipped: {err}", file=sys.stderr)
        else:
            xs.append(img)
            ys.append(s.label)
    x = np.stack(xs) if xs else np.zeros((0, image_size, image_size, 3), np.uint8)
    return x, np.asarray(ys, np.int32), bad


def readable(samples: list[Sample], bad: list[str]) -> list[Sample]:
    """``samples`` minus those ``load_arrays`` reported in ``bad`` (same order as its arrays)."""
    return [s for s in samples if not any(b.startswith(str(s.path)) for b in bad)]


def class_weights(y: np.ndarray, n_classes: int = len(CLASSES)) -> dict[int, float]:
    """Inverse-frequency weights, normalised so a balanced set gets 1.0 for every class.

    >>> class_weights(np.array([0, 0, 0, 1, 2, 2]), 3)
    {0: 0.6666666666666666, 1: 2.0, 2: 1.0}
    """
    counts = np.bincount(y, minlength=n_classes).astype(float)
    counts[counts == 0] = 1
    return {i: float(len(y) / (n_classes * c)) for i, c in enumerate(counts)}


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, training: bool = False,
                 seed: int = 0, augment=None, weights: np.ndarray | None = None):
    """Cached, prefetched ``tf.data`` pipeline of float32 pixels 0..255 and float labels.

    ``y``: one label per image (``[N]``, a sigmoid target) or one row per image (``[N, C]``:
    one-hot or soft targets of a softmax). Augmentation (Keras layers) runs in the pipeline,
    so the saved model holds none of it. ``weights`` (per-sample loss weights) make it yield
    ``(x, y, weight)``.
    """
    import tensorflow as tf

    y = y.astype("float32")
    cols = (x, y[:, None] if y.ndim == 1 else y)
    if weights is not None:
        cols += (np.asarray(weights, "float32"),)
    ds = tf.data.Dataset.from_tensor_slices(cols).cache()
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, *rest: (tf.cast(a, tf.float32), *rest),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        ds = ds.map(lambda a, *rest: (augment(a, training=True), *rest),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
