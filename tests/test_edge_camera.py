"""The camera loop on real video files used as the camera (``--video``), plus camera failures.

Videos are written with ``cv2.VideoWriter``: mp4v (lossy, like a real camera stream) and
FFV1 (lossless, to prove frames and files go through the very same preprocessing).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import MAX_FAILED_READS, LoopStats, Roi, run_camera, run_loop
from edge.classifier import Classifier
from edge.classify import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from edge.overlay import gui_problem
from edge.sources import FrameSource, open_source
from tests.fixtures_common import logit_distance, synth_lesion

ROOT = Path(__file__).resolve().parents[1]
REPEAT = 3  # frames per image in the videos
# mp4v at OpenCV's default bitrate moves the pixels of these 64x64 frames by ~5 grey levels
# on average (up to ~40 at sharp blob edges); on the tiny model that shifted P(malignant) by
# at most 0.004 (measured, all four formats). The margin leaves room for steeper models: a
# label may differ only for an image whose direct probability is within it of the
# threshold, and no frame's probability may move by more than it.
LOSSY_MARGIN = 0.1  # |p_video - p_image|
LOSSY_LOGIT_MARGIN = 1.0  # labels must agree this far (in logits) from the threshold


def _frames(n: int, size: int = 64, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synth_lesion(rng, bool(i % 2), size) for i in range(n)]


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 10) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened(), f"OpenCV cannot write {fourcc} here"
    for f in frames:
        for _ in range(REPEAT):
            vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


@pytest.fixture(scope="module")
def lesions() -> list[np.ndarray]:
    return _frames(12)


@pytest.fixture(scope="module")
def clf(tiny_export) -> Classifier:
    return Classifier(tiny_export / "model_fp32.tflite")


def _video_json(tmp_path: Path, model: Path, video: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "frames.json"
    rc = main(["-m", str(model), "--video", str(video), "--headless", "-q",
               "--json", str(out), *extra])
    return rc, json.loads(out.read_text())


@pytest.mark.parametrize("model", ["model_int8.tflite", "model_fp32.onnx"])
def test_lossy_video_gives_the_same_labels_as_the_images(tiny_export, lesions, tmp_path, model):
    video = _write_video(tmp_path / "lesions.mp4", lesions, "mp4v")
    rc, doc = _video_json(tmp_path, tiny_export / model, video)
    assert rc == EXIT_OK
    frames = doc["predictions"]
    assert len(frames) == len(lesions) * REPEAT
    direct = Classifier(tiny_export / model)
    checked = 0
    for i, f in enumerate(frames):
        ref = direct.predict_rgb(lesions[i // REPEAT])
        assert abs(f["probability"] - ref.probability) < LOSSY_MARGIN, (i, f, ref)
        if logit_distance(ref.probability, ref.threshold) >= LOSSY_LOGIT_MARGIN:
            assert f["label"] == ref.label, (i, f, ref)
            checked += 1
    assert checked >= 0.8 * len(frames), "too few frames far enough from the threshold"
    assert len({f["label"] for f in frames}) == 2, "the tiny model's outputs must vary"


def test_lossless_video_frames_equal_files_exactly(tiny_export, lesions, tmp_path):
    """Same pixels in, same tensor out: the camera path and the file path share preprocessing."""
    files = []
    for i, img in enumerate(lesions):
        files.append(tmp_path / f"{i:02d}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    video = _write_video(tmp_path / "lossless.avi", lesions, "FFV1")
    model = tiny_export / "model_int8.tflite"
    rc, doc = _video_json(tmp_path, model, video)
    assert rc == EXIT_OK
    rc_files = main(["-m", str(model), *map(str, files), "-q", "--json", str(tmp_path / "f.json")])
    by_file = json.loads((tmp_path / "f.json").read_text())["predictions"]
    assert rc_files == EXIT_OK and len(by_file) == len(lesions)
    for i, f in enumerate(doc["predictions"]):
        assert f["raw_probability"] == by_file[i // REPEAT]["raw_probability"]


def test_roi_box_classifies_only_the_region(tiny_export, lesions, tmp_path):
    """A lesion pasted into a larger noisy frame, classified through --roi X,Y,W,H."""
    rng = np.random.default_rng(0)
    big = []
    for img in lesions[:4]:
        frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        frame[30:94, 40:104] = img
        big.append(frame)
    video = _write_video(tmp_path / "roi.avi", big, "FFV1")
    clf = Classifier(tiny_export / "model_fp32.tflite")
    rc, doc = _video_json(tmp_path, clf.model_path, video, "--roi", "40,30,64,64")
    assert rc == EXIT_OK and doc["summary"]["extra"]["roi"] == "box 40,30,64,64"
    for i, f in enumerate(doc["predictions"]):
        assert f["raw_probability"] == clf.predict_rgb(lesions[i // REPEAT]).raw_probability


def test_roi_parsing():
    assert Roi.parse("0.5").rect((480, 640)) == (200, 120, 240, 240)
    assert Roi.parse("600,400,100,100").rect((480, 640)) == (600, 400, 40, 80)  # clipped
    for bad in ("0", "1.5", "1,2,3", "a,b,c,d", "-1,0,5,5"):
        with pytest.raises(ValueError, match="--roi"):
            Roi.parse(bad)


def test_camera_that_cannot_be_opened(tiny_export, capsys):
    cam = 7
    while os.path.exists(f"/dev/video{cam}"):
        cam += 1
    assert main(["-m", str(tiny_export / "model_int8.tflite"), "--camera", str(cam)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: camera {cam}: cannot open it")


@pytest.mark.parametrize("content", [None, b"", b"not a video at all\n" * 50])
def test_video_missing_empty_or_not_a_video(tiny_export, tmp_path, capsys, content):
    video = tmp_path / "clip.mp4"
    if content is not None:
        video.write_bytes(content)
    assert main(["-m", str(tiny_export / "model_int8.tflite"), "--video", str(video)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(video) in err[0]


def test_video_that_ends_early_keeps_the_frames_it_had(tiny_export, lesions, tmp_path, capsys):
    """An MJPG AVI cut at 60%: its header still announces every frame."""
    full = _write_video(tmp_path / "full.avi", lesions, "MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    rc, doc = _video_json(tmp_path, tiny_export / "model_int8.tflite", cut)
    n = len(doc["predictions"])
    assert rc == EXIT_BAD_INPUT and 0 < n < len(lesions) * REPEAT
    assert doc["errors"] and "ended early" in doc["errors"][0]["message"]
    assert f"after {n} of {len(lesions) * REPEAT} frames" in capsys.readouterr().err


class FlakyCamera(FrameSource):
    """A real video file read as a *camera* that drops reads: every ``drop_every``-th read
    fails, and after ``dies_after`` reads it delivers nothing (unplugged)."""

    def __init__(self, video: Path, drop_every: int, dies_after: int | None = None):
        self._inner = open_source(video=video)
        self.name, self.is_file, self.fps = "flaky-camera", False, None
        self.reads, self.drop_every, self.dies_after = 0, drop_every, dies_after

    def read(self):
        self.reads += 1
        if self.dies_after is not None and self.reads > self.dies_after:
            return None
        if self.reads % self.drop_every == 0:
            return None
        return self._inner.read()

    def close(self):
        self._inner.close()


def test_camera_dropping_frames_keeps_going_then_reports_loss(clf, lesions, tmp_path):
    video = _write_video(tmp_path / "cam.mp4", lesions, "mp4v")
    stats = LoopStats()
    with FlakyCamera(video, drop_every=4, dies_after=20) as cam:
        results = list(run_loop(clf, cam, stats=stats))
    assert len(results) == 15  # reads 1..20 minus 4, 8, 12, 16, 20
    assert stats.ended == "stream lost" and "no frame in" in stats.warnings[0]
    assert stats.failed_reads == 5 + MAX_FAILED_READS - 1
    assert [r.index for r in results] == list(range(15))


def test_run_camera_summary_and_recording(clf, lesions, tmp_path):
    video = _write_video(tmp_path / "in.mp4", lesions, "mp4v")
    save = tmp_path / "annotated.mp4"
    lines = []
    with open_source(video=video) as src:
        summary, preds = run_camera(clf, src, display=False, save=save, roi=Roi.parse("0.9"),
                                    on_result=lambda r: lines.append(r.index), log=lambda m: 0)
    n = len(lesions) * REPEAT
    assert len(preds) == n and lines == list(range(n))
    assert summary.classified == n and summary.bad == 0 and summary.per_s > 0
    assert summary.p90_ms >= summary.mean_ms * 0.5 and summary.extra["ended"] == "end of video"
    cap = cv2.VideoCapture(str(save))
    got = []
    while (r := cap.read())[0]:
        got.append(r[1])
    assert len(got) == n and got[0].shape == (64, 64, 3)
    raw = cv2.VideoCapture(str(video)).read()[1]
    assert np.abs(got[0].astype(int) - raw).max() > 100  # the overlay is drawn on the frames
    assert not list(tmp_path.glob(".*part*")), "temporary recording left behind"


def test_window_without_gui_falls_back_to_headless(tiny_export, lesions, tmp_path, capsys):
    reason = gui_problem()
    if reason is None:
        pytest.skip("this OpenCV build can open windows; the fallback is not exercised")
    video = _write_video(tmp_path / "w.mp4", lesions[:2], "mp4v")
    rc = main(["-m", str(tiny_export / "model_int8.tflite"), "--video", str(video)])
    out = capsys.readouterr().out
    assert rc == EXIT_OK
    notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
    assert notes == [f"note: {reason}"] and "continuing headless" in notes[0]
    assert out.count("#") >= 2 * REPEAT and "frames classified" in out
    assert "not a medical device" in out.lower()


def test_ctrl_c_quits_cleanly_with_a_summary_and_exit_130(tiny_export, tmp_path):
    # Ctrl-C exits 130 in camera/video mode as in file mode (it used to exit 0 here)
    # long enough (thousands of 256 px frames) that the run is still going when SIGINT lands
    video = _write_video(tmp_path / "long.avi", _frames(8, size=256) * 150, "MJPG")
    proc = subprocess.Popen(
        [sys.executable, "edge/classify.py", "-m", str(tiny_export / "model_int8.tflite"),
         "--video", str(video), "--headless", "--json", str(tmp_path / "r.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines arrive as they are printed
        # as from a terminal: a launcher that ignores SIGINT (`cmd &` in a script, some CI
        # runners) would hand that on through exec, and Python then never raises Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for the first classified frame
        line = proc.stdout.readline()
        if "#" in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED == 130, err
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert 0 < doc["summary"]["classified"] < 960 and "p90_ms" in doc["summary"]


def test_benchmark_style_run_loop_on_a_path(clf, lesions, tmp_path):
    video = _write_video(tmp_path / "b.mp4", lesions[:4], "mp4v")
    results = list(run_loop(clf, str(video)))
    assert len(results) == 4 * REPEAT
    assert results[0].prediction.source.endswith("b.mp4#0")
