"""Common fixtures: synthetic lesion-like images, a real-data slice, a tiny trained model.

The synthetic images are separable (malignant = larger, darker, irregular blob), so a model
trained for a few steps gives outputs that actually vary, and format comparisons mean something.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets" / "skin-lesions"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def logit_distance(p: float, threshold: float) -> float:
    """|logit(p) - logit(threshold)|: how far a probability is from flipping its label.

    Logits, not probabilities: a lossy copy of an image moves a probability near 0 or 1 far less
    than one near 0.5, and thresholds chosen for sensitivity sit well below 0.5.
    """
    lg = lambda q: float(np.log(np.clip(q, 1e-7, 1 - 1e-7) / np.clip(1 - q, 1e-7, 1)))  # noqa: E731
    return abs(lg(p) - lg(threshold))


def synth_lesion(rng: np.random.Generator, malignant: bool, size: int = 64) -> np.ndarray:
    """One RGB uint8 image: skin-toned background with a blob (larger/darker if malignant)."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (rng.integers(200, 235), rng.integers(160, 190), rng.integers(140, 170))
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    c = (int(size / 2 + rng.integers(-size // 8, size // 8)),) * 2
    if malignant:
        axes = (int(size * rng.uniform(0.25, 0.38)), int(size * rng.uniform(0.18, 0.3)))
        colour = (int(rng.integers(30, 70)), int(rng.integers(15, 40)), int(rng.integers(10, 30)))
    else:
        axes = (int(size * rng.uniform(0.1, 0.16)),) * 2
        colour = (int(rng.integers(120, 160)), int(rng.integers(80, 110)), int(rng.integers(50, 80)))
    cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return img


def write_synthetic_dataset(root: Path, n_train: int = 24, n_test: int = 8, size: int = 64,
                            seed: int = 0) -> Path:
    """``root/{train,test}/{benign,malignant}/<n>.jpg`` with consecutive numbers."""
    rng = np.random.default_rng(seed)
    num = 1
    for split, n in (("train", n_train), ("test", n_test)):
        for label in ("benign", "malignant"):
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                img = synth_lesion(rng, label == "malignant", size)
                cv2.imwrite(str(d / f"{num}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                num += 1
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "skin-lesions")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (SHARED_DATA / "train").is_dir():
        pytest.skip(f"real dataset not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_slice(tmp_path_factory, real_data_dir) -> Path:
    """A small fixed slice of the real dataset (copied into tmp, never into the repo)."""
    out = tmp_path_factory.mktemp("real") / "skin-lesions"
    for split, n in (("train", 40), ("test", 12)):
        for label in ("benign", "malignant"):
            files = sorted((real_data_dir / split / label).glob("*.jpg"),
                           key=lambda p: int(p.stem))[:n]
            (out / split / label).mkdir(parents=True)
            for f in files:
                shutil.copy(f, out / split / label / f.name)
    return out


def train_tiny_model(size: int = 32, steps: int = 60, seed: int = 0):
    """A tiny Keras CNN (raw 0..255 input, sigmoid output) trained on synthetic lesions."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.arange(128) % 2
    x = np.stack([synth_lesion(rng, bool(t), size) for t in y]).astype("float32")
    model = keras.Sequential([
        keras.Input((size, size, 3), name="image"),
        layers.Rescaling(1 / 255.0, name="scale"),
        layers.Conv2D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9),  # moving stats must move in ~60 steps
        layers.ReLU(), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same"), layers.ReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(1, activation="sigmoid", name="malignant"),
    ], name="tiny_cnn")
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=max(1, steps // 8), verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """Path to a saved ``model.keras`` whose outputs vary across inputs."""
    model = train_tiny_model()
    path = tmp_path_factory.mktemp("tiny") / "model.keras"
    model.save(path)
    return path
