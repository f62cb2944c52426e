"""Ctrl-C in file mode: exit 130 with the results so far written (camera mode: test_edge_camera)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.classifier import Classifier
from edge.classify import EXIT_INTERRUPTED, main
from tests.fixtures_common import synth_lesion


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ctrl_c_images")
    rng = np.random.default_rng(7)
    for i in range(16):
        d = root / ("malignant" if i % 2 else "benign")
        d.mkdir(exist_ok=True)
        rgb = synth_lesion(rng, bool(i % 2), 64)
        assert cv2.imwrite(str(d / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def test_ctrl_c_in_file_mode_exits_130_with_results_so_far(tiny_export, image_dir, tmp_path,
                                                           monkeypatch, capsys):
    """Same rule as camera mode (test_edge_camera): Ctrl-C exits 130, outputs still written."""
    real, calls = Classifier.predict_file, []

    def interrupted_on_the_third(self, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, path)

    monkeypatch.setattr(Classifier, "predict_file", interrupted_on_the_third)
    js = tmp_path / "r.json"
    rc = main(["-m", str(tiny_export / "model_int8.tflite"), str(image_dir), "--json", str(js)])
    assert rc == EXIT_INTERRUPTED == 130
    assert len(json.loads(js.read_text())["predictions"]) == 2
    assert "interrupted: 2 of 16" in capsys.readouterr().out
