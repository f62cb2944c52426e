"""Latency of the web app's model in a real headless Chromium (onnxruntime-web, WebAssembly).

Builds the app (``export.web``), serves it with the cross-origin isolation headers that
wasm threads need (COOP/COEP), opens it once per thread count in Debian's ``chromium``
(Playwright) and times, inside the page with ``performance.now()``: the model call alone
(``session.run`` on a prepared tensor, like ``benchmarks/latency.py`` rows) and the whole
classification of a 1280x720 camera-sized frame (centre crop + area resize, colour
constancy, input conversion, inference, calibration). Rows have ``report.ROW_KEYS`` /
``E2E_KEYS`` with runtime ``onnxruntime-web-wasm``; ``--merge`` adds them to a
``benchmarks/latency.py`` report (and re-renders its report.md), else a report of their own.

Example:
    python benchmarks/web.py --model models/model_int8.onnx --threads 1,2 --out bench_out/web
    python benchmarks/web.py --merge runs/demo/bench/report.json
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import base64
import os
import tempfile
import threading
from datetime import datetime, timezone

import numpy as np

from benchmarks import machine
from benchmarks.markdown import _machine_section, render
from benchmarks.latency_report import (E2E_KEYS, e2e_table, full_table, headline_table, load_report,
                               make_row, write_json)
from benchmarks.stats import LatencyStats
from core.atomic import atomic_write_text, sha256_file
from core.helpformat import DefaultsHelp, program
from edge.manifest import find_manifest

RUNTIME = "onnxruntime-web-wasm"
CHROMIUM = os.environ.get("SKINLESION_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
METHOD = ("Web rows (runtime onnxruntime-web-wasm): the app built by export/webapp.py, served "
          "with COOP/COEP, in headless Debian chromium (benchmarks/web.py); timed inside the "
          "page with performance.now(); one page load per thread count; the row times "
          "session.run on a prepared tensor; end-to-end = the page's whole classification of a "
          "1280x720 frame (no decode); camera FPS = the page's own FPS (moving average) after "
          "--camera-seconds of its camera loop on a 1280x720 30 FPS fake camera.")


def frame_rgb(size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """A camera-sized RGB frame: a real test image when the dataset is present, else noise."""
    import cv2

    w, h = size
    try:
        from edge.images import load_rgb
        from train.data import resolve_data_dir

        f = sorted((resolve_data_dir(None) / "test" / "malignant").glob("*.jpg"))[0]
        rgb = cv2.resize(load_rgb(f), (w, h), interpolation=cv2.INTER_CUBIC)
    except Exception:  # no dataset: the timing does not depend on the content
        rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return rgb


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 30, fps: int = 30) -> Path:
    """A fake-camera video (4:2:0 YUV4MPEG2) showing ``rgb`` for ``frames`` frames."""
    import cv2

    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


BENCH_JS = """async ([b64, w, h, runs, warmup]) => {
  await window.skinlesion.ready;
  const d = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
  return window.skinlesion.benchmark(new ImageData(d, w, h), { runs, warmup });
}"""


def measure(url: str, threads: list[int], runs: int, warmup: int, tmp: Path,
            camera_s: float = 8.0) -> list[dict]:
    """One page load per thread count: the page's raw timings, then its camera loop's FPS
    on a 1280x720 30 FPS fake camera (Chromium's --use-file-for-fake-video-capture)."""
    from playwright.sync_api import sync_playwright

    rgb = frame_rgb()
    frame = [base64.b64encode(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
                              .tobytes()).decode(), rgb.shape[1], rgb.shape[0]]
    cam = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-video-capture={write_y4m(tmp / 'camera.y4m', rgb)}"]
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS + cam)
        for t in threads:
            page = browser.new_page()
            page.goto(f"{url}?threads={t}&nosw")
            res = page.evaluate(BENCH_JS, [*frame, runs, warmup])
            page.click("#cam")
            page.wait_for_function("window.skinlesion.fps > 0", timeout=60_000)
            page.wait_for_timeout(camera_s * 1000)
            res["cameraFps"] = page.evaluate("window.skinlesion.fps")
            out.append({"threads": t, **res, "chromium": browser.version})
            page.close()
        browser.close()
    return out


def rows_for(model: Path, results: list[dict], warmup: int) -> tuple[list[dict], list[dict]]:
    """Latency rows (ROW_KEYS) and end-to-end rows (E2E_KEYS) from the page's timings."""
    m = find_manifest(model)
    art = m.artifact_for(model)
    fmt = art.format if art else model.stem
    common = {"model": m.model_name, "format": fmt, "runtime": RUNTIME}
    rows, e2e = [], []
    for r in results:
        if r["threads"] != r["threadsUsed"]:
            err = f"asked for {r['threads']} threads, the page ran {r['threadsUsed']}"
            rows.append(make_row(role="model", threads=r["threads"], error=err, **common))
            continue
        s = LatencyStats.from_ms(r["invoke"])
        rows.append(make_row(
            role="model", threads=r["threads"], file=str(model), sha256=sha256_file(model),
            size_mb=model.stat().st_size / 1e6, input_dtype=art.input.dtype if art else None,
            input_shape=[1, m.input_height, m.input_width, m.channels], load_ms=r["loadMs"],
            first_ms=r["first"], warmup=warmup, **s.to_dict(), **common))
        tot = LatencyStats.from_ms(r["total"])
        e2e.append(make_row(
            E2E_KEYS, threads=r["threads"], images=len(r["total"]), bad_images=0,
            preprocess_p50_ms=float(np.median(r["fit"])), invoke_p50_ms=s.p50,
            total_p50_ms=tot.p50, total_p90_ms=tot.p90, total_mean_ms=tot.mean,
            files_per_s=tot.ips, camera_frames=None, camera_fps=r["cameraFps"],
            camera_source="1280x720 30 FPS fake camera (y4m), the page's own FPS", **common))
    return rows, e2e


def standalone_md(doc: dict) -> str:
    out = [f"# Browser latency: {doc.get('model') or 'model'}", "", f"*{doc['disclaimer']}*", "",
           f"Produced by: `{doc['command']}`", "", "## Headline (batch 1, sorted by p50)", ""]
    out += headline_table(doc["rows"]) + ["", "## All measurements (ms)", ""]
    out += full_table(doc["rows"]) + ["", "## Whole classification in the page (ms)", ""]
    out += e2e_table(doc["e2e"]) + [""]
    errors = [r for r in doc["rows"] if r["status"] == "error"]
    if errors:
        out += ["## Errors", ""] + [f"- {r['threads']}t: {r['error']}" for r in errors] + [""]
    out += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    out += _machine_section(doc) + ["## How it was measured", "", METHOD, ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=program("benchmarks/web.py"), description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp)
    p.add_argument("-m", "--model", type=Path, default=Path("models/model_int8.onnx"),
                   help="ONNX model with its manifest.json")
    p.add_argument("-t", "--threads", default="1,2", help="comma-separated wasm thread counts")
    p.add_argument("-n", "--runs", type=int, default=200, help="timed model calls per thread count")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before timing")
    p.add_argument("--camera-seconds", type=float, default=8.0,
                   help="seconds of the camera loop before its FPS is read")
    p.add_argument("-o", "--out", type=Path, default=Path("bench_out/web"),
                   help="folder for report.json/report.md (without --merge)")
    p.add_argument("--merge", type=Path, metavar="REPORT_JSON",
                   help="add the rows to this benchmarks/latency.py report.json and re-render it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from export.web import WebAppError, build_webapp, make_server

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
        old = load_report(args.merge) if args.merge else None
        with tempfile.TemporaryDirectory() as tmp:
            app = build_webapp(args.model, Path(tmp) / "app")
            server = make_server(app.out, 0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                results = measure(f"http://127.0.0.1:{server.server_address[1]}/index.html",
                                  threads, args.runs, args.warmup, Path(tmp),
                                  args.camera_seconds)
            finally:
                server.shutdown()
    except (WebAppError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows, e2e = rows_for(args.model, results, args.warmup)
    note = (f"{METHOD} Chromium {results[0]['chromium']}, {app.runtime}; cross-origin "
            f"isolated: {results[0]['isolated']}. Command: python benchmarks/web.py "
            + " ".join(argv))
    if old is not None:
        old["rows"] = [r for r in old["rows"] if r["runtime"] != RUNTIME] + rows
        old["e2e"] = [r for r in old.get("e2e", []) if r["runtime"] != RUNTIME] + e2e
        old["notes"] = [n for n in old.get("notes", []) if not n.startswith("Web rows")] + [note]
        out_json, doc = args.merge, old
        md = render(doc)
    else:
        m = find_manifest(args.model)
        doc = {"tool": "benchmarks/web.py", "command": "python benchmarks/web.py " + " ".join(argv),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "model": m.model_name, "run_id": m.run_id, "disclaimer": m.disclaimer,
               "trained_on": m.trained_on, "machine": machine.machine_record(),
               "notes": [note], "rows": rows, "e2e": e2e}
        out_json = args.out / "report.json"
        md = standalone_md(doc)
    write_json(out_json, doc)
    atomic_write_text(out_json.with_name("report.md"), md)
    print("\n".join(headline_table(rows)))
    print(f"wrote {out_json}, {out_json.with_name('report.md')}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
