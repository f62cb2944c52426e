"""The Pi camera path: Picamera2 "RGB888" frames are B,G,R in memory; the runner must see RGB.

No Pi camera here, so ``picamera2`` is a stand-in module whose ``capture_array`` returns a
known B,G,R frame, exactly what libcamera hands over. The frame then goes through the real
source, the real camera loop and a real exported model.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edge.classifier import Classifier
from edge.camera import run_camera
from edge.sources import Picamera2Source, open_source
from tests.fixtures_common import synth_lesion

RGB = synth_lesion(np.random.default_rng(3), malignant=True)


class FakePicamera2:
    """The parts of ``picamera2.Picamera2`` the source uses; frames are B,G,R like RGB888."""

    configured: dict = {}

    @staticmethod
    def global_camera_info():
        return [{"Model": "imx708", "Num": 0}]

    def create_video_configuration(self, main):
        return {"main": main}

    def configure(self, config):
        FakePicamera2.configured = config

    def start(self):
        self.frames = 0

    def capture_array(self, stream="main"):
        self.frames += 1
        return np.ascontiguousarray(RGB[:, :, ::-1])  # what libcamera's "RGB888" holds: B,G,R

    def stop(self):
        pass

    def close(self):
        pass


@pytest.fixture
def picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    return FakePicamera2


def test_rgb888_frames_come_out_as_rgb(picamera2):
    src = open_source(camera="picamera2", width=64, height=64)
    assert isinstance(src, Picamera2Source)
    assert picamera2.configured["main"] == {"size": (64, 64), "format": "RGB888"}
    frame = src.read()
    src.close()
    assert frame.shape == RGB.shape and frame.dtype == np.uint8
    assert np.array_equal(frame, RGB)  # not RGB[:, :, ::-1]


def test_auto_picks_the_camera_module(picamera2):
    assert isinstance(open_source(camera="auto"), Picamera2Source)


def test_pi_camera_frame_classifies_like_the_image(picamera2, tiny_export):
    clf = Classifier(tiny_export / "model_fp32.tflite")
    src = open_source(camera="picamera2", width=64, height=64)
    summary, preds = run_camera(clf, src, display=False, max_frames=2, log=lambda _: None)
    src.close()
    want = clf.predict_rgb(RGB).probability
    assert len(preds) == 2 and all(p.probability == pytest.approx(want, abs=1e-6) for p in preds)
    swapped = clf.predict_rgb(np.ascontiguousarray(RGB[:, :, ::-1])).probability
    assert abs(swapped - want) > 1e-6  # the check can fail: colour order moves this model
