"""Dataset discovery, leak-free splits and a cached ``tf.data`` pipeline.

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

CLASSES = ("benign", "malignant")  # label index = position; the model outputs P(malignant)
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


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into CLASSES

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
        if d.is_dir() and _class_dirs(d / "train" if _find(d, "train") else d):
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


def _class_dirs(parent: Path) -> dict[int, Path]:
    return {i: d for i, c in enumerate(CLASSES) if (d := _find(parent, c)) is not None}


def list_samples(data_dir: str | Path, split: str = "train", exclude_leaked: bool = True,
                 exclude: tuple[str, ...] = ()) -> list[Sample]:
    """Image files of one split, sorted by class then file number.

    ``exclude`` holds paths relative to ``data_dir`` (e.g. ``test/benign/335.jpg``); with
    ``exclude_leaked`` the 27 known train/test duplicates are dropped from ``test``.
    Without ``train/``/``test/`` folders, the whole folder is ``train`` and there is no test.
    """
    data_dir = Path(data_dir)
    split_dir = _find(data_dir, split)
    if split_dir is None:
        if split != "train" or not _class_dirs(data_dir):
            return []
        split_dir = data_dir
    drop = {e.lower() for e in exclude} | (
        {e.lower() for e in LEAKED_TEST_FILES} if exclude_leaked else set())
    out = []
    for label, d in sorted(_class_dirs(split_dir).items()):
        files = [p for p in d.rglob("*") if p.is_file() and is_image_file(p)]
        for p in files:
            rel = p.relative_to(data_dir).as_posix().lower()
            if rel not in drop:
                out.append(Sample(p, label))
    return sorted(out, key=lambda s: (s.label, s.number, s.path.name))


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


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights, normalised so a balanced set gets 1.0 for both classes."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
    counts[counts == 0] = 1
    return {i: float(len(y) / (len(CLASSES) * c)) for i, c in enumerate(counts)}


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, training: bool = False,
                 seed: int = 0, augment=None, weights: np.ndarray | None = None):
    """Cached, prefetched ``tf.data`` pipeline of float32 pixels 0..255 and float labels.

    Augmentation (Keras layers) runs in the pipeline, so the saved model holds none of it.
    ``weights`` (per-sample loss weights) make it yield ``(x, y, weight)``.
    """
    import tensorflow as tf

    cols = (x, y.astype("float32")[:, None])
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
