"""Classify skin-lesion photos (files, folders, globs) or live camera/video with an exported model.

Research and education tool, NOT a medical device: it does not diagnose. Preprocessing,
labels and the decision threshold come from the model's manifest (manifest.json beside the
model, or embedded in it). Imports only numpy, OpenCV and one inference runtime.

Examples:
    python edge/classify.py lesion.jpg photos/ "more/*.png"
    python edge/classify.py --model runs/demo/export/model_int8.onnx --json results.json photos/
    python edge/classify.py --camera                    # Pi camera module if present, else USB 0
    python edge/classify.py --camera 1 --roi 0.6 --save session.mp4
    python edge/classify.py --video clip.mp4 --headless --csv frames.csv
    python edge/classify.py --no-guard photos/          # label every input: no quality gate, no guard
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
from typing import TYPE_CHECKING

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no OpenCV warning lines around ours

from core.helpformat import DefaultsHelp, program  # noqa: E402
from core.digits import down, named  # noqa: E402

from edge.modelpath import LOOKUP_HELP, ModelChoice, ModelNotFound, choose_model  # noqa: E402
from edge.runner import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: E402

if TYPE_CHECKING:
    from edge.classifier import Classifier

EXIT_CODES = """not a lesion, unusable:
  Every input first meets the quality gate of the model's manifest (too small, too dark or
  bright, mostly one flat colour, blurred: status "unusable" with the reason), then the
  model's out-of-distribution guard (status "not_a_lesion": no lesion in view). Neither gets
  a benign/malignant label in the console, CSV or JSON; the summary counts them. They are
  results, not errors: they never change the exit code (a camera sees no lesion most of the
  time). --no-guard turns both checks off. Models exported before the guard (schema 1/2)
  have no guard; the quality gate, which does not depend on the model, still applies with
  its defaults for the model's input size. The manifest's input corrections (a dark
  dermoscope ring filled, colour constancy) always apply; the first line names them.

exit codes:
  0    every input (image or frame) got a result: a label, not_a_lesion or unusable
  1    some inputs were bad (missing, unreadable, dropped frames); all the others got a
       result and every requested output was still written
  2    usage or model error: bad flags, no/corrupt model, runtime not installed, manifest
       does not match the model, camera or video cannot be opened
  130  interrupted (Ctrl-C), in every mode (files, camera, video); the summary and any
       --json/--csv output of what was classified so far were still written"""


class UsageError(Exception):
    """A problem with the command line or the model: one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from edge.runtimes import BACKENDS

    p = argparse.ArgumentParser(
        prog=program("edge/classify.py"), description="\n\n".join(__doc__.split("\n\n")[:2]),
        epilog=f"{LOOKUP_HELP}\n\n{EXIT_CODES}", formatter_class=DefaultsHelp)
    p.add_argument("inputs", nargs="*", help="image files, folders (searched recursively) "
                   "or glob patterns (quote them)")
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="exported .tflite or .onnx model (default: $SKINLESION_MODEL, else "
                        "./models/model_int8.tflite, else the packaged model; see 'model "
                        "lookup' below)")
    p.add_argument("-b", "--backend", default="auto", choices=("auto",) + BACKENDS,
                   help="inference runtime; auto: LiteRT, then tflite-runtime, then "
                        "tensorflow.lite for .tflite; onnxruntime for .onnx")
    p.add_argument("-t", "--threads", type=int, default=None,
                   help="runtime thread count (default: the runtime's own choice)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write results as JSON to FILE (no FILE or '-': to stdout, with the "
                        "per-image lines on stderr)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write results as CSV to FILE")
    p.add_argument("-n", "--limit", type=int, default=None,
                   help="classify at most N images, spread evenly over the sorted inputs")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    p.add_argument("-k", "--top-k", type=int, default=1, metavar="K",
                   help="also show the K most likely labels with their probabilities (console, "
                        "CSV 'top', JSON 'top', camera overlay)")
    p.add_argument("--no-guard", action="store_true",
                   help="skip the quality gate and the not-a-lesion guard: label every input")
    cam = p.add_argument_group("camera and video")
    cam.add_argument("--camera", nargs="?", const="auto", default=None, metavar="ID",
                     help="classify live frames: a USB camera index (0, 1, ...), a device "
                          "path, 'picamera2' (Pi camera module) or, with no ID, 'auto' "
                          "(Picamera2 when it sees a camera, else camera 0)")
    cam.add_argument("--video", type=Path, default=None, metavar="FILE",
                     help="run the camera loop on a video file instead of a camera")
    cam.add_argument("--width", type=int, default=None, help="requested camera frame width")
    cam.add_argument("--height", type=int, default=None, help="requested camera frame height")
    cam.add_argument("--roi", default=None, metavar="SPEC",
                     help="classify only part of each frame: a centred square covering a "
                          "fraction of the shorter side (0.6) or a pixel box X,Y,W,H")
    cam.add_argument("--headless", action="store_true",
                     help="print one line per frame instead of opening a window")
    cam.add_argument("--save", type=Path, default=None, metavar="FILE",
                     help="record the annotated stream to FILE (.mp4: mp4v, .avi: MJPG)")
    cam.add_argument("--max-frames", type=int, default=None, metavar="N",
                     help="stop after N frames")
    return p


def _validate(args) -> None:
    live = args.camera is not None or args.video is not None
    if args.camera is not None and args.video is not None:
        raise UsageError("use either --camera or --video, not both")
    if live and args.inputs:
        raise UsageError("give image inputs or --camera/--video, not both")
    if not live and not args.inputs:
        raise UsageError("nothing to classify: pass image files/folders, --camera or --video "
                         "(see --help)")
    if not live and (args.save or args.roi or args.headless or args.max_frames is not None):
        raise UsageError("--save, --roi, --headless and --max-frames apply to --camera/--video")
    for flag in ("threads", "limit", "width", "height", "max_frames"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive number, got {v}")
    if args.csv == "-" and args.json == "-":
        raise UsageError("only one of --json and --csv can go to stdout")
    if args.roi:
        from edge.camera import Roi

        try:
            Roi.parse(args.roi)
        except ValueError as e:
            raise UsageError(str(e)) from None


def _load_classifier(args) -> tuple[Classifier, ModelChoice]:
    """``(Classifier, ModelChoice)``: the model by the lookup order (``edge/modelpath.py``)."""
    from edge.classifier import Classifier
    from edge.manifest import ManifestError
    from edge.runtimes import ModelLoadError, RuntimeMissing

    try:
        choice = choose_model(args.model)
        return Classifier(choice.path, args.backend, args.threads, verify=True,
                          guard=not args.no_guard), choice
    except (ModelNotFound, ManifestError, ModelLoadError, RuntimeMissing) as e:
        raise UsageError(str(e)) from None


def _model_line(clf, choice: ModelChoice | None = None) -> str:
    m = clf.manifest
    g = m.guard
    checks = ("guard and quality gate off (--no-guard)" if not clf.use_guard else
              f"guard {'on' if g else 'none in this model'}, quality gate "
              f"{'on' if clf.gate.enabled else 'off'}"
              + (" (defaults: manifest before schema 3)" if m.schema < 3 else ""))
    fixes = [f for f, on in (("dark-border fill", m.border not in ("", "none")),
                             (f"colour constancy {m.color_constancy}",
                              m.color_constancy not in ("", "none"))) if on]
    thr = ("thresholds " + named(m.modality_thresholds)
           + " (by the model's modality output)" if m.modality_thresholds
           else f"threshold {down(m.threshold)}" if m.positive_label
           else f"{len(m.labels)} classes, no threshold")
    origin = f" ({choice.origin})" if choice else ""
    return (f"Model: {clf.model_path}{origin} [{clf.backend}], "
            f"input {m.input_height}x{m.input_width}, {thr}; {checks}"
            + (f"; {', '.join(fixes)}" if fixes else "") + "; not a medical device")


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # odd file names must never crash printing
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or an argparse usage error (2)
        return int(e.code or 0)
    to_stdout = "-" in (args.json, args.csv)

    def out(line: str) -> None:
        print(line, file=sys.stderr if to_stdout else sys.stdout, flush=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr if to_stdout or line.startswith(("error", "warning"))
              else sys.stdout, flush=True)

    from edge.runner import LiveOptions, Outputs, RunError, run_files, run_live
    from edge.sources import CameraError

    try:
        _validate(args)
        clf, choice = _load_classifier(args)
        if not args.quiet:
            log(_model_line(clf, choice))
        outputs = Outputs(args.json, args.csv, args.quiet, args.threads, max(1, args.top_k))
        if args.camera is None and args.video is None:
            return run_files(clf, args.inputs, outputs, out, log, args.limit)
        live = LiveOptions(args.camera, args.video, args.width, args.height, args.roi,
                           args.headless, args.save, args.max_frames)
        return run_live(clf, live, outputs, out, log)
    except (UsageError, CameraError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
