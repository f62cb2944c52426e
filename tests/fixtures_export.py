"""Export fixtures (owned by the export work): tiny exported artifacts for edge/bench tests.

``tiny_export`` is the folder ``export_model`` writes for the ``tiny_model_path`` model
(32x32 input) in all six registry formats: the artifacts, ``manifest.json`` and
``export_report.{json,md}`` (parity against Keras on synthetic test images included; each
file's own threshold chosen on synthetic validation images).
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


def tiny_operating_rule():
    """Validation images and rule the tiny export chooses each file's threshold with."""
    from export.threshold import OperatingRule

    x_val, y_val = synthetic_arrays(80, seed=13)  # 40 positives: the bound needs all 40
    return OperatingRule(x_val, y_val, target_sensitivity=0.9, confidence=0.95)


@pytest.fixture(scope="session")
def tiny_export_results(tmp_path_factory, tiny_model_path):
    """``(export folder, list[FormatResult])`` for the tiny model in every format."""
    import keras

    from edge.manifest import Manifest, QualityGate
    from export.parity import keras_probabilities
    from export.pipeline import export_model
    from export.threshold import choose

    out = tmp_path_factory.mktemp("tiny_export") / "export"
    cal, _ = synthetic_arrays(TINY_CALIBRATION, seed=11)
    x_test, y_test = synthetic_arrays(48, seed=12)
    rule = tiny_operating_rule()
    # as train/evaluate.py would: the Keras model's threshold by the same rule on validation
    model = keras.saving.load_model(tiny_model_path, compile=False)
    keras_thr = choose(rule.labels, keras_probabilities(model, rule.images), 1.0, rule)
    manifest = Manifest(threshold=keras_thr.threshold, threshold_rule=keras_thr.rule,
                        trained_on="synthetic benign/malignant blobs (tests/fixtures_common.py)")
    results = export_model(model, out, calibration=cal, manifest=manifest, test_images=x_test,
                           test_labels=y_test, min_calibration=TINY_CALIBRATION,
                           operating=rule, log=lambda msg: None,
                           # the gate is tested on its own export (tests/test_guard.py): at 32 px
                           # some synthetic benign blobs are > 96% flat skin
                           quality=QualityGate(enabled=False))
    return out, results


@pytest.fixture(scope="session")
def tiny_export(tiny_export_results) -> Path:
    """Folder holding model_{fp32,fp16,dynamic,int8}.tflite, model_{fp32,int8}.onnx, manifest.json."""
    return tiny_export_results[0]
