"""Latency benchmark of every exported artifact x runtime x thread count, in one report.

Answers: which format, which runtime, how many threads, how fast, how big, how accurate,
and what a Raspberry Pi 4 would likely do (an estimate from a MobileNetV2 reference timed in
the same run). Writes ``report.json`` (one row per format/runtime/threads, fixed keys),
``report.md`` and ``latency.png`` to ``--out``.

Example:
    python benchmarks/latency.py --artifacts runs/demo/export --out runs/demo/bench
    python benchmarks/latency.py --quick                      # a fast smoke run
    python benchmarks/latency.py --compare runs/old/bench/report.json --fail-on-regression
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import program  # noqa: E402

import argparse
import importlib.util
import shutil
from datetime import datetime, timezone

from benchmarks import compare as cmp
from benchmarks import machine
from benchmarks.artifacts import (InputError, default_artifacts_dir, default_keras_model,
                                  load_manifest, pick_images)
from benchmarks.chart import write_chart
from benchmarks.markdown import render
from benchmarks.latency_report import headline_table, load_report, report_dict, write_json
from benchmarks.suite import BenchConfig, run_suite
from core.atomic import atomic_write_text
from edge.manifest import Manifest
from edge.runtimes import BACKENDS


def _ints(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of integers") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("thread counts must be integers >= 1, e.g. 1,2,4")
    return vals


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=program("benchmarks/latency.py"), description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-a", "--artifacts", type=Path, default=None,
                   help="export folder with manifest.json (default: newest runs/*/export, "
                        "else the default model's folder: $SKINLESION_MODEL, ./models, the "
                        "packaged model; see skinlesion classify --help)")
    p.add_argument("-f", "--formats", type=_names, default=None,
                   help="comma-separated formats (default: all in the export)")
    p.add_argument("-r", "--runtimes", type=_names, default=None,
                   help="comma-separated: litert, tflite-runtime, tensorflow, onnxruntime "
                        "(default: every installed one except tensorflow)")
    p.add_argument("-t", "--threads", type=_ints, default=[1, 2, 4],
                   help="thread counts, capped at the machine's cores")
    p.add_argument("-n", "--runs", type=int, default=200, help="minimum timed runs per case")
    p.add_argument("--warmup", type=int, default=20, help="untimed warm-up runs per case")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="minimum seconds of timed runs per case")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop a case's timed runs after this many seconds (at least 10 runs)")
    p.add_argument("--keras", type=Path, default=None,
                   help="Keras model for the baseline rows (default: <run>/model.keras)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras baseline rows")
    p.add_argument("--keras-budget", type=float, default=10.0,
                   help="seconds of timed runs per Keras case")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the MobileNetV2 reference (no Pi 4 estimates)")
    p.add_argument("--reference-size", type=int, default=224, help=argparse.SUPPRESS)
    p.add_argument("--images", type=Path, default=None,
                   help="images for end-to-end timing (default: the dataset's test split)")
    p.add_argument("--e2e-images", type=int, default=100, help="images for end-to-end timing")
    p.add_argument("--frames", type=int, default=120, help="frames of the camera-loop video")
    p.add_argument("--no-e2e", action="store_true", help="skip end-to-end timing")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output folder (default: <run>/bench, else bench_out)")
    p.add_argument("--compare", default="auto",
                   help="old report.json to compare with; 'auto' = benchmarks/reference/"
                        "<machine class>.json when committed; 'none' = no comparison")
    p.add_argument("--threshold", type=float, default=cmp.DEFAULT_THRESHOLD,
                   help="relative p50 slowdown that counts as a regression")
    p.add_argument("--floor-ms", type=float, default=cmp.DEFAULT_FLOOR_MS,
                   help="absolute p50 slowdown (ms) below which nothing is a regression")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when a regression is marked")
    p.add_argument("--save-reference", action="store_true",
                   help="also save report.json as benchmarks/reference/<machine class>.json")
    p.add_argument("--case-timeout", type=float, default=600.0, help="seconds per case")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 20 runs, 2 warm-up, 1 thread, no reference, 8 images, "
                        "Keras only with an explicit --keras")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def make_config(args: argparse.Namespace, artifacts: Path) -> tuple[BenchConfig, list[str], str]:
    notes: list[str] = []
    unknown = [r for r in args.runtimes or [] if r not in BACKENDS]
    if unknown:
        raise InputError(f"unknown runtime(s) {', '.join(unknown)}; use {', '.join(BACKENDS)}")
    if args.quick:
        args.runs, args.warmup, args.min_seconds = min(args.runs, 20), min(args.warmup, 2), 0.0
        args.threads, args.no_reference = [1], True
        args.no_keras = args.no_keras or args.keras is None  # an explicit --keras still runs
        args.e2e_images, args.frames, args.keras_budget = min(args.e2e_images, 8), 16, 2.0
    if machine.pi_model() and not args.no_reference:
        args.no_reference = True
        notes.append("running on a Raspberry Pi: latencies are measured here, so no Pi 4 "
                     "estimate (and no reference model) is needed")
    keras = None
    if not args.no_keras:
        keras = args.keras or default_keras_model(artifacts)
        if keras is not None and importlib.util.find_spec("tensorflow") is None:
            notes.append("Keras baseline skipped: TensorFlow is not installed")
            keras = None
        elif keras is None:
            notes.append(f"Keras baseline skipped: no model.keras beside {artifacts} "
                         "(pass --keras PATH)")
        elif not Path(keras).is_file():
            raise InputError(f"{keras}: Keras model not found (fix --keras or use --no-keras)")
    images, where = ([], "skipped (--no-e2e)") if args.no_e2e else \
        pick_images(args.images, args.e2e_images)
    if not images and not args.no_e2e:
        notes.append(where)
    cfg = BenchConfig(artifacts=artifacts, formats=args.formats, runtimes=args.runtimes,
                      threads=args.threads, runs=args.runs, warmup=args.warmup,
                      min_seconds=args.min_seconds, time_budget=args.time_budget,
                      keras_model=keras, keras_budget=args.keras_budget,
                      reference=not args.no_reference, reference_size=args.reference_size,
                      images=images, frames=args.frames, case_timeout=args.case_timeout,
                      peak_seconds=0.05 if args.quick else 0.3)
    return cfg, notes, where


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    artifacts = args.artifacts or default_artifacts_dir()
    out = args.out or (artifacts.resolve().parent / "bench" if artifacts.name == "export"
                       else Path("bench_out"))
    try:
        old_path = _compare_path(args.compare)
        old = load_report(old_path) if old_path else None
        cfg, notes, images_where = make_config(args, artifacts)
        manifest = load_manifest(artifacts) or Manifest()
        rec = machine.machine_record()
        result = run_suite(cfg, progress=not args.no_progress)
    except (InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rec["busy_after"] = machine.busy(0.5, load=False)
    result.notes = notes + result.notes
    method = {"runs": cfg.runs, "warmup": cfg.warmup, "min_seconds": cfg.min_seconds,
              "time_budget": cfg.time_budget, "keras_budget": cfg.keras_budget,
              "threads": cfg.threads, "percentile_method": "numpy linear (type 7)",
              "accuracy_source": _acc_source(artifacts), "images_source": images_where,
              "images": len(cfg.images), "frames": cfg.frames}
    extra = {"tool": "benchmarks/latency.py",
             "command": "python benchmarks/latency.py " + " ".join(argv),
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "artifacts": str(artifacts), "model": manifest.model_name,
             "run_id": manifest.run_id, "trained_on": manifest.trained_on,
             "disclaimer": manifest.disclaimer}
    doc = report_dict(result, rec, machine.warnings_for(rec), method, extra)
    if old is not None:
        doc["compare"] = cmp.compare_rows(result.rows, old, args.threshold, args.floor_ms,
                                          str(old_path))
        doc["compare"]["warnings"] += cmp.machine_warnings(old, rec)
    return _write(doc, out, args, result.interrupted)


def _compare_path(spec: str) -> Path | None:
    if spec == "none":
        return None
    if spec == "auto":
        return cmp.default_reference(machine.machine_class())
    if not Path(spec).is_file():
        raise InputError(f"{spec}: --compare report not found (pass a report.json, or 'none')")
    return Path(spec)


def _acc_source(artifacts: Path) -> str | None:
    from benchmarks.artifacts import EXPORT_REPORT, accuracy_index

    _, info = accuracy_index(artifacts)
    if not info:
        return None
    return f"{EXPORT_REPORT} parity on {info.get('n_test')} test images, joined by sha256"


def _write(doc: dict, out: Path, args: argparse.Namespace, interrupted: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    chart = write_chart(doc["rows"], out / "latency.png", f"{doc.get('model') or 'model'}: "
                        "latency per format and threads (batch 1)")
    if chart is None:
        doc["notes"].append("no chart: matplotlib missing or nothing measured "
                            "(pip install -e '.[bench]')")
    md = render(doc) + (f"\n![latency chart]({chart.name})\n" if chart else "")
    write_json(out / "report.json", doc)
    atomic_write_text(out / "report.md", md)
    print("\n".join(headline_table(doc["rows"])))
    for w in doc["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    errors = [r for r in doc["rows"] + doc["e2e"] if r["status"] == "error"]
    if errors:
        print(f"{len(errors)} case(s) failed; see 'Errors' in {out / 'report.md'}", file=sys.stderr)
    if args.save_reference and not interrupted:
        dst = cmp.REFERENCE_DIR / f"{doc['machine']['machine_class']}.json"
        shutil.copyfile(out / "report.json", dst)
        print(f"saved reference results: {dst}")
    regressions = (doc.get("compare") or {}).get("regressions", 0)
    if regressions:
        print(f"{regressions} regression(s) against {doc['compare']['old']}", file=sys.stderr)
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}"
          + (f", {chart}" if chart else ""))
    print(f"next: open {out / 'report.md'}, or compare a later run with "
          f"python benchmarks/latency.py --compare {out / 'report.json'}")
    if interrupted:
        return 130
    if args.fail_on_regression and regressions:
        return 1
    ok = [r for r in doc["rows"] if r["status"] == "ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
