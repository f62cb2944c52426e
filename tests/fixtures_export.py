"""Export fixtures (owned by the export work): tiny exported artifacts for edge/bench tests.

``tiny_export`` is the folder ``export_model`` writes for the ``tiny_model_path`` model
(32x32 input) in all six registry formats: the artifacts, ``manifest.json`` and
``export_report.{json,md}`` (parity against Keras on synthetic test images included).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_common import synth_lesion

TINY_CALIBRATION = 64  # far below the real minimum (300): fine for a 32x32 toy model


def synthetic_arrays(n: int, size: int = 32, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [n, size, size, 3], int32 labels) of synthetic lesions, classes alternating."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    return np.stack([synth_lesion(rng, bool(t), size) for t in y]), y


@pytest.fixture(scope="session")
def tiny_export_results(tmp_path_factory, tiny_model_path):
    """``(export folder, list[FormatResult])`` for the tiny model in every format."""
    from export.pipeline import export_model

    out = tmp_path_factory.mktemp("tiny_export") / "export"
    cal, _ = synthetic_arrays(TINY_CALIBRATION, seed=11)
    x_test, y_test = synthetic_arrays(48, seed=12)
    results = export_model(tiny_model_path, out, calibration=cal, test_images=x_test,
                           test_labels=y_test, min_calibration=TINY_CALIBRATION,
                           log=lambda msg: None)
    return out, results


@pytest.fixture(scope="session")
def tiny_export(tiny_export_results) -> Path:
    """Folder holding model_{fp32,fp16,dynamic,int8}.tflite, model_{fp32,int8}.onnx, manifest.json."""
    return tiny_export_results[0]
