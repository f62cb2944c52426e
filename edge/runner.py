"""Run a classifier over files/folders/globs or a camera/video; write the results; exit code.

The library half of ``edge/classify.py`` (which only parses, calls and prints): expand the
inputs, classify each one (a bad file is a ``Failure`` row and the batch goes on), write JSON
and CSV atomically, print the summary, and return the exit code. ``not_a_lesion`` and
``unusable`` results are results, not errors: they do not change the exit code.

Example:
    >>> clf = Classifier("models/model_int8.tflite")                          # doctest: +SKIP
    >>> run_files(clf, ["photos/"], Outputs(csv="out.csv"), print, print)    # doctest: +SKIP
    0
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core import EXIT_FAILED as EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: F401
Printer = Callable[[str], None]


class RunError(Exception):
    """A problem that stops the run (an output that cannot be written): one line, exit 2."""


@dataclass
class Outputs:
    """Where results go: ``json``/``csv`` paths (``"-"``: stdout), per-input lines or not."""

    json: str | None = None
    csv: str | None = None
    quiet: bool = False
    threads: int | None = None  # recorded in the results' run info
    top_k: int = 1  # labels shown per result


def run_files(clf, inputs: list[str], outputs: Outputs, out: Printer, log: Printer,
              limit: int | None = None) -> int:
    """Classify every image the inputs name; returns the exit code."""
    from edge.images import ImageError
    from edge.inputs import expand_inputs, spread
    from edge.results import Failure, RunInfo, prediction_line, summarize

    paths, problems = expand_inputs(inputs)
    failures = [Failure(p.source, str(p)) for p in problems]
    for f in failures:
        log(f"error: {f.message}")
    paths = spread(paths, limit)
    info = RunInfo.from_classifier(clf, outputs.threads, outputs.top_k)
    preds, code, t0 = [], EXIT_OK, time.perf_counter()
    try:
        for path in paths:
            try:
                pred = clf.predict_file(path)
            except ImageError as e:
                failures.append(Failure(str(path), str(e)))
                log(f"error: {e}")
                continue
            except Exception as e:  # a decoder/runtime surprise must not stop the batch
                msg = f"{path}: cannot classify ({type(e).__name__}: {first_line(e)})"
                failures.append(Failure(str(path), msg))
                log(f"error: {msg}")
                continue
            preds.append(pred)
            if not outputs.quiet:
                out(prediction_line(pred, info.positive_label, info.top_k))
    except KeyboardInterrupt:
        log(f"interrupted: {len(preds)} of {len(paths)} images classified")
        code = EXIT_INTERRUPTED
    summary = summarize(preds, failures, time.perf_counter() - t0)
    write_outputs(outputs, preds, failures, summary, info, log)
    if code == EXIT_OK and failures:
        code = EXIT_BAD_INPUT
    return code


@dataclass
class LiveOptions:
    """The camera/video side of a run (see ``edge/classify.py --help``)."""

    camera: str | None = None
    video: Path | None = None
    width: int | None = None
    height: int | None = None
    roi: str | None = None
    headless: bool = False
    save: Path | None = None
    max_frames: int | None = None


def run_live(clf, live: LiveOptions, outputs: Outputs, out: Printer, log: Printer) -> int:
    """Classify camera or video frames; returns the exit code (1 when frames were lost).

    Raises ``ValueError`` for a bad ``roi`` and ``edge.sources.CameraError`` when the source
    cannot be opened.
    """
    from edge.camera import Roi, run_camera
    from edge.results import Failure, RunInfo, prediction_line
    from edge.sources import open_source

    roi = Roi.parse(live.roi) if live.roi else None
    info = RunInfo.from_classifier(clf, outputs.threads, outputs.top_k)
    source = open_source(live.camera, live.video, live.width, live.height)
    try:
        on_result = None if outputs.quiet else (
            lambda r: out(prediction_line(r.prediction, info.positive_label, info.top_k)))
        summary, preds = run_camera(clf, source, roi=roi, display=not live.headless,
                                    save=live.save, max_frames=live.max_frames,
                                    on_result=on_result, log=log, top_k=info.top_k)
    finally:
        source.close()
    failures = [Failure(source.name, w) for w in summary.extra["warnings"]]
    write_outputs(outputs, preds, failures, summary, info, log, unit="frames")
    if summary.extra["ended"].startswith("interrupted"):  # Ctrl-C: 130, as in file mode
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT if summary.bad or failures else EXIT_OK


def write_outputs(outputs: Outputs, preds, failures, summary, info, log: Printer,
                  unit: str = "images") -> None:
    """JSON and CSV (atomically), then the summary lines."""
    from edge.results import summary_lines, to_dict, write_csv, write_json

    for dest, write in ((outputs.json, lambda d: write_json(d, to_dict(preds, failures, summary,
                                                                        info))),
                        (outputs.csv, lambda d: write_csv(d, preds, failures, info))):
        if dest is None:
            continue
        try:
            write(dest)
        except OSError as e:
            raise RunError(f"{dest}: cannot write results ({e.strerror or e})") from None
    extra = summary.extra
    lines = summary_lines(summary, info, unit)
    if extra:
        lines.insert(1, f"Source: {extra['source']} ({extra['ended']}); {extra['failed_reads']} "
                        f"failed reads; FPS {summary.per_s or 0:.1f}"
                        + (f"; region {extra['roi']}" if extra.get("roi") else "")
                        + (f"; recorded to {extra['saved']}" if extra.get("saved") else ""))
    for line in lines:
        log(line)


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[-1][:200] if lines else ""
