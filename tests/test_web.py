"""The web app in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

The page's probabilities must equal the Python runner's (``edge.classifier.Classifier`` on
the same ONNX file) within ``PROB_TOL``: real test images through the file picker, real test
images as a fake camera (a .y4m video), a reload with the network off, and a schema-3
manifest (lesion types, guard, quality gate) on a small ONNX model written here.
``make test`` installs chromium (as root) and ``npm ci --prefix web``; missing either FAILS.

Tolerances (measured, see docs/web.md): decoding is bit-exact (Chromium and OpenCV both use
libjpeg-turbo's accurate IDCT); onnxruntime-web's int8 kernels round differently from native
onnxruntime's fused QLinearConv, so raw P(malignant) differs by up to ~0.06.
"""
from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from core.digits import down
from edge.classifier import Classifier
from edge.images import load_rgb
from edge.preprocess import fit_to_input
from export.web import build_webapp, make_server

pytestmark = pytest.mark.web
ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "model_int8.onnx"
CHROMIUM = os.environ.get("SKINLESION_CHROMIUM", "/usr/bin/chromium")
PROB_TOL = 0.10     # |page - Python| on the calibrated probability (temperature 0.654)
FIT_TOL = 2         # max grey-level difference of fitted camera frames (YUV->RGB; measured 1)
N_FILES = 60
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def _need(ok: bool, msg: str) -> None:
    if not ok:
        pytest.fail(msg, pytrace=False)


def real_test_images(n: int) -> list[Path]:
    """``n`` real test images, half benign half malignant; skip only when the dataset is absent."""
    from train.data import DatasetNotFound, resolve_data_dir

    try:
        root = resolve_data_dir(None)
    except DatasetNotFound as e:
        pytest.skip(f"real dataset absent: {e}")
    out = []
    for label in ("benign", "malignant"):
        files = sorted((root / "test" / label).glob("*.jpg"), key=lambda p: int(p.stem))
        out += files[:: max(1, len(files) // (n // 2))][: n // 2]
    return out


def checksum(img: np.ndarray) -> int:
    """The page's checksum of its fitted pixels (app.js), to compare them with Python's."""
    flat = img.reshape(-1).astype(np.int64)
    return int((flat * (np.arange(flat.size) % 251 + 1)).sum())


def serve(folder: Path):
    server = make_server(folder, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"


# ----------------------------------------------------------------- y4m (the fake camera)
def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    """RGB frames -> 4:2:0 YUV4MPEG2 (OpenCV's BT.601 conversion)."""
    import cv2

    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())


def read_y4m(path: Path) -> list[np.ndarray]:
    """Every frame of a 4:2:0 .y4m as RGB (OpenCV's conversion), as the Python runner sees it."""
    import cv2

    data = path.read_bytes()
    head, _, body = data.partition(b"\n")
    tok = {t[:1]: t[1:] for t in head.split()[1:]}
    w, h = int(tok[b"W"]), int(tok[b"H"])
    size, frames, i = w * h * 3 // 2, [], 0
    while i < len(body):
        i = body.index(b"\n", i) + 1
        yuv = np.frombuffer(body[i : i + size], np.uint8).reshape(h * 3 // 2, w)
        frames.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))
        i += size
    return frames


def camera_frames(files: list[Path], width: int = 480, height: int = 360) -> list[np.ndarray]:
    """Each real image enlarged to the frame height, centred on a grey frame, shown twice."""
    import cv2

    frames = []
    for k, f in enumerate(files):
        frame = np.full((height, width, 3), 40 + 10 * (k % 8), np.uint8)
        img = cv2.resize(load_rgb(f), (height, height), interpolation=cv2.INTER_CUBIC)
        x = (width - height) // 2
        frame[:, x : x + height] = img
        frames += [frame, frame]
    return frames


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def web_app(tmp_path_factory) -> Path:
    _need(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: the browser tests need Debian's "
          "chromium (as root: apt-get install -y chromium chromium-driver; make test does it)")
    _need((ROOT / "web" / "node_modules" / "onnxruntime-web").is_dir(),
          "web/node_modules missing: run npm ci --prefix web (make test does it)")
    return build_webapp(MODEL, tmp_path_factory.mktemp("web") / "app").out


@pytest.fixture(scope="session")
def y4m(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "lesions.y4m"
    write_y4m(path, camera_frames(real_test_images(30)[::2]))
    return path


@pytest.fixture(scope="module")  # one Playwright at a time: each module starts and ends its own
def browser(web_app, y4m):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=FLAGS + [f"--use-file-for-fake-video-capture={y4m}"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_url(web_app):
    server, url = serve(web_app)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def python_runner() -> Classifier:
    """Gate and guard off: a probability for every image (compared with the page's)."""
    return Classifier(MODEL, threads=1, guard=False)


@pytest.fixture(scope="session")
def guarded_runner() -> Classifier:
    """The runner as users run it: quality gate and guard on (statuses compared)."""
    return Classifier(MODEL, threads=1)


def _guard_threshold(clf: Classifier) -> float | None:
    return clf.manifest.guard.threshold if clf.manifest.guard is not None else None


def open_page(browser, url: str, context=None):
    page = (context or browser).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.evaluate("window.skinlesion.ready")
    page.errors = errors
    return page


def pick_files(page, files: list[Path]) -> list[dict]:
    before = page.evaluate("window.skinlesion.batchDone || 0")
    page.set_input_files("#file", [str(f) for f in files])
    page.wait_for_function(f"(window.skinlesion.batchDone || 0) > {before}", timeout=120_000)
    return page.evaluate("window.skinlesion.results").copy()[-len(files):]


DROP = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const n = window.skinlesion.batchDone || 0;
  document.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
  while ((window.skinlesion.batchDone || 0) === n) await new Promise((r) => setTimeout(r, 20));
  return window.skinlesion.results.at(-1);
}"""


def assert_agree(results: list[dict], py_raw, py_guarded, threshold,
                 guard_threshold: float | None) -> None:
    """The page's results against the Python runner's on the same images.

    ``py_raw``: gate and guard off (a probability for every image); ``py_guarded``: as the
    runner decides (``ok`` / ``unusable`` / ``not_a_lesion``); ``threshold``: one value, or one
    per image (a model with a modality output: the Python runner's for that image). Preprocessing is bit-exact, so
    ``unusable`` must match exactly; ``not_a_lesion`` may differ only where the guard score is
    within PROB_TOL of the guard threshold (the runtimes' int8 kernels differ)."""
    statuses = [r["status"] for r in results]
    for r, pg in zip(results, py_guarded):
        if (r["status"] == "unusable") != (pg.status == "unusable"):
            raise AssertionError(f"{r['source']}: page {r['status']}, Python {pg.status}")
        if r["status"] != pg.status:  # ok vs not_a_lesion: only next to the guard threshold
            assert guard_threshold is not None and pg.guard_score is not None and \
                abs(pg.guard_score - guard_threshold) <= PROB_TOL, (r["source"], r["status"],
                                                                    pg.status, pg.guard_score)
    keep = [i for i, s in enumerate(statuses) if s != "unusable"]
    page_probs = np.asarray([results[i]["probability"] for i in keep])
    py_probs = np.asarray([py_raw[i].probability for i in keep])
    diff = np.abs(page_probs - py_probs)
    print(f"page vs Python, {len(diff)} images: max |dp| {diff.max():.6f}, "
          f"mean {diff.mean():.6f}, exact {(diff < 1e-6).sum()}; statuses "
          f"{ {s: statuses.count(s) for s in set(statuses)} }")
    assert diff.max() <= PROB_TOL, f"largest difference {diff.max():.4f} > {PROB_TOL}"
    thr = np.broadcast_to(np.asarray(threshold, float), (len(results),))
    bad = [i for i in keep if statuses[i] == "ok" and results[i]["label"] != py_raw[i].label
           and results[i].get("modality", "") == py_raw[i].modality
           and abs(py_raw[i].probability - thr[i]) > PROB_TOL]
    assert not bad, f"labels differ away from the threshold for images {bad}"


# ----------------------------------------------------------------- tests
def test_file_picker_matches_python_runner(browser, app_url, python_runner, guarded_runner,
                                           tmp_path):
    files = real_test_images(N_FILES)
    assert len(files) >= 50
    page = open_page(browser, app_url)
    results = pick_files(page, files)
    assert [r["source"] for r in results] == [f.name for f in files]
    py = [python_runner.predict_file(f) for f in files]
    py_guarded = [guarded_runner.predict_file(f) for f in files]
    # decoding (canvas vs OpenCV) and preprocessing are bit-exact: the differences below
    # come from the runtime alone (onnxruntime-web's int8 kernels vs native onnxruntime)
    m = python_runner.manifest  # the input size is the manifest's, never re-typed here
    assert [r["fittedHash"] for r in results] == \
        [checksum(fit_to_input(load_rgb(f), m.input_height, m.input_width)) for f in files]
    m_py = python_runner.manifest
    # each image at its modality's threshold (one threshold when the model has no modality)
    assert {r["threshold"] for r in results} <= {m_py.threshold_for(p.modality) for p in py}
    same = [r.get("modality", "") == p.modality for r, p in zip(results, py)]
    assert sum(same) >= 0.95 * len(py)  # the modality output travels across runtimes
    assert_agree(results, py, py_guarded, [p.threshold for p in py],
                 _guard_threshold(guarded_runner))
    assert page.is_visible("#disclaimer")
    assert "not a medical device" in page.text_content("#disclaimer")
    # figures shown cut like the Python runner's (web/src/digits.js, core/digits.py)
    status = page.text_content("#status")
    if m_py.modality_thresholds:
        assert "thresholds " + ", ".join(
            f"{'phone photo' if k == 'phone' else k} {down(t, 3)}"
            for k, t in m_py.modality_thresholds.items()) in status, status
    else:
        assert f"threshold {down(m_py.threshold, 3)} " in status
    last = results[-1]
    mod = last.get("modality") or ""
    where = (f", {'phone photo' if mod == 'phone' else mod} threshold {down(last['threshold'], 3)}"
             if mod else "")
    shown = "" if last["probability"] is None else f" ({down(last['probability'], 3)}{where})"
    assert page.text_content("#list li:last-child") == f"{files[-1].name}: {last['label']}{shown}"
    dropped = page.evaluate(DROP, [base64.b64encode(files[2].read_bytes()).decode(), "drop.jpg"])
    assert dropped["source"] == "drop.jpg" and dropped["probability"] == results[2]["probability"]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(files[0].read_bytes()[:300])
    after = pick_files(page, [bad, files[1]])  # a bad file is one line, the batch goes on
    assert after[0]["status"] == "error" and after[0]["label"].startswith("broken.jpg: ")
    assert after[1]["probability"] == results[1]["probability"]
    assert not page.errors
    page.close()


def test_camera_frames_match_python_runner(browser, app_url, y4m, python_runner,
                                           guarded_runner):
    frames = read_y4m(y4m)
    h, w = python_runner.manifest.input_height, python_runner.manifest.input_width
    fitted = np.stack([fit_to_input(f, h, w) for f in frames]).astype(np.int16)
    page = open_page(browser, app_url)
    page.click("#cam")
    page.wait_for_function("window.skinlesion.cameraOn && window.skinlesion.fps > 0",
                           timeout=30_000)
    seen: dict[int, dict] = {}
    for _ in range(16):
        r = page.evaluate("window.skinlesion.captureFrame()")
        assert (r["frameWidth"], r["frameHeight"]) == (480, 360)
        got = np.frombuffer(base64.b64decode(r["fittedB64"]), np.uint8).reshape(h, w, 3)
        err = np.abs(fitted - got).reshape(len(frames), -1).max(axis=1)
        k = int(err.argmin())
        assert err[k] <= FIT_TOL, f"camera frame matches no y4m frame (closest: {err[k]} levels)"
        seen[k] = r
        page.wait_for_timeout(250)
    assert len(seen) >= 5, f"only {len(seen)} distinct camera frames classified"
    py = [python_runner.predict_rgb(frames[k]) for k in seen]
    py_guarded = [guarded_runner.predict_rgb(frames[k]) for k in seen]
    assert_agree(list(seen.values()), py, py_guarded, [p.threshold for p in py],
                 _guard_threshold(guarded_runner))
    assert "FPS" in page.text_content("#fps")
    assert not page.errors
    page.close()


def test_works_offline_after_first_load(browser, web_app):
    files = real_test_images(4)
    server, url = serve(web_app)
    context = browser.new_context()
    page = open_page(browser, url, context)
    online = [r["probability"] for r in pick_files(page, files)]
    server.shutdown()
    server.server_close()
    context.set_offline(True)
    page.reload()
    page.evaluate("window.skinlesion.ready")
    offline = [r["probability"] for r in pick_files(page, files)]
    assert offline == online
    context.close()
