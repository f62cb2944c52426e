"""Export a trained Keras model to every edge format, check each one, write the manifest.

Writes model_{fp32,fp16,dynamic,int8}.tflite, model_{fp32,int8}.onnx, manifest.json and
export_report.{md,json} into ``--out`` (default ``<run>/export``). Each artifact is run with
its real runtime on the test split and compared with the Keras model; one outside its
tolerance makes the exit code 1. Each artifact gets its own operating threshold, chosen with
the run's rule on its own outputs for the run's validation images (``--keras-threshold``: all
share the Keras model's). Exit code 2: bad input (model, data, output folder, flags).

Any Keras image classifier exports too: ``--labels`` names its outputs (a softmax over N
classes, or one sigmoid with 2 labels), ``--input-range``/``--color-order`` say what pixels it
expects, and ``--data`` holds one folder of images per label for calibration and parity.

Example:
    python export/convert.py                                  # newest runs/*/model.keras
    python export/convert.py --model my.keras --labels cat,dog,fox --input-range -1,1 --data DIR --out OUT
    python export/convert.py --model runs/demo/model.keras --formats tflite_int8,onnx_fp32
    python export/convert.py --tolerance tflite_int8.min_agreement=0.98 --tolerance all.max_accuracy_drop=0.02
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.helpformat import DefaultsHelp, program  # noqa: E402
from edge.preprocess import BORDERS  # noqa: E402
from export.context import ExportError  # noqa: E402
from export.formats import FORMAT_NAMES, FORMATS, Tolerance, select_formats  # noqa: E402

from core import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: E402


def parse_tolerances(specs: list[str]) -> dict[str, Tolerance]:
    """``["tflite_int8.min_agreement=0.98", "all.max_prob_diff=none"]`` -> per-format tolerances."""
    tol = {name: f.tolerance for name, f in FORMATS.items()}
    for spec in specs:
        try:
            key, value = spec.split("=", 1)
            target, fld = key.strip().rsplit(".", 1)
            val = None if value.strip().lower() == "none" else float(value)
        except ValueError:
            raise ExportError(f"--tolerance '{spec}': expected FORMAT.FIELD=VALUE, e.g. "
                              "tflite_int8.min_agreement=0.98") from None
        names = FORMAT_NAMES if target == "all" else [target]
        if target != "all" and target not in FORMATS:
            raise ExportError(f"--tolerance '{spec}': unknown format '{target}'; use one of "
                              f"{', '.join(FORMAT_NAMES)} or 'all'")
        try:
            for n in names:
                tol[n] = tol[n].with_overrides(**{fld: val})
        except ValueError as e:
            raise ExportError(f"--tolerance '{spec}': {e}") from None
    return tol


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=program("export/convert.py"), description=__doc__.split("\n\n")[0],
        formatter_class=DefaultsHelp)
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="trained model.keras (default: <run>/model.keras, else the newest runs/*/model.keras)")
    p.add_argument("-r", "--run", type=Path, default=None,
                   help="training run folder (config.json, metrics.json); default: the model's folder")
    p.add_argument("-d", "--data", type=Path, default=None,
                   help="dataset folder with train/ and test/ (default: the run's, then the usual places)")
    p.add_argument("-o", "--out", type=Path, default=None, help="output folder (default: <run>/export)")
    p.add_argument("-f", "--formats", default="all",
                   help=f"comma-separated subset of: {', '.join(FORMAT_NAMES)}")
    p.add_argument("-n", "--calibration-count", type=int, default=400,
                   help="training images used to calibrate the int8 formats")
    p.add_argument("--min-calibration", type=int, default=300,
                   help="warn when fewer calibration images than this are found")
    p.add_argument("-t", "--tolerance", action="append", default=[], metavar="FORMAT.FIELD=VALUE",
                   help="override a parity tolerance (fields: max_prob_diff, min_agreement, "
                        "max_accuracy_drop; FORMAT may be 'all'); repeatable")
    p.add_argument("--skip-parity", action="store_true",
                   help="skip the comparison with Keras on the test split (not recommended)")
    p.add_argument("--keras-threshold", action="store_true",
                   help="give every file the Keras model's threshold instead of choosing each "
                        "file's own on the validation split")
    p.add_argument("--no-guard", action="store_true",
                   help="export without the out-of-distribution guard output (the quality gate "
                        "is still written into the manifest)")
    p.add_argument("--guard-k", type=int, default=None, metavar="K",
                   help="guard: number of minor principal components (default: "
                        "export/guard.py's DEFAULT_K)")
    p.add_argument("--border", choices=BORDERS, default=None,
                   help="input correction recorded in the manifest and applied by calibration, "
                        "thresholds, parity, the guard and every runner: fill_dark fills a dark "
                        "dermoscope ring or corners (edge.preprocess.fill_dark_border); default: "
                        "the run's (none)")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing calibration images")
    p.add_argument("--report-only", type=Path, default=None, metavar="FOLDER",
                   help="write FOLDER/export_report.md again from its export_report.json (after "
                        "a change of how reports print; nothing is measured again) and stop")
    p.add_argument("--labels", default=None, metavar="A,B,...",
                   help="your own model: one class name per output, in order (a softmax); two "
                        "names for one sigmoid output (it gives P(second name)); --data must hold "
                        "a folder of images per name (default: the run's labels)")
    p.add_argument("--input-range", default=None, metavar="LO,HI", choices=INPUT_RANGES,
                   help="the pixel values your model expects: 0,1 | -1,1 | 0,255 (0..255 maps "
                        "linearly onto it; recorded in the manifest, applied by every runner); "
                        "default: 0,255 (the project's models scale inside)")
    p.add_argument("--color-order", default=None, choices=("rgb", "bgr"), type=str.lower,
                   help="channel order your model expects (default: rgb)")
    p.add_argument("--trained-on", default=None, metavar="TEXT",
                   help="what the model was trained on, for the manifest and every runner's "
                        "output (default: the run's record, else 'not stated')")
    return p


INPUT_RANGES = ("0,1", "-1,1", "0,255")


def apply_contract(manifest, args, width: int, model_path: Path) -> None:
    """Your own model's contract from the flags: labels, output layout, input, provenance."""
    if args.labels is not None:
        labels = tuple(x.strip() for x in args.labels.split(",") if x.strip())
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ExportError(f"--labels {args.labels!r}: give two or more distinct class names, "
                              "comma-separated, one per model output")
        if width == 1 and len(labels) != 2:
            raise ExportError(f"{model_path}: one sigmoid output needs 2 labels (negative, "
                              f"positive), --labels gives {len(labels)}")
        if width > 1 and width != len(labels):
            raise ExportError(f"{model_path}: --labels gives {len(labels)} names but the model "
                              f"outputs {width} values; pass one name per output, in order")
        manifest.labels = labels
        manifest.output = "sigmoid" if width == 1 else "softmax"
        manifest.positive_index = 1 if width == 1 else -1
        manifest.classes, manifest.modalities, manifest.modality_index = (), (), -1
        manifest.trained_on = ("not stated (a Keras model exported with --labels "
                               f"{','.join(labels)}; pass --trained-on)")
    elif width > 1 and manifest.output == "sigmoid" and manifest.output_size != width:
        raise ExportError(f"{model_path}: the model outputs {width} values and its run names no "
                          "classes; pass --labels with one name per output, in order")
    if args.input_range:
        manifest.pixel_range = tuple(float(v) for v in args.input_range.split(","))
    if args.color_order:
        manifest.color_order = args.color_order.upper()
    if args.trained_on:
        manifest.trained_on = args.trained_on


def _resolve_paths(args) -> tuple[Path, Path, Path]:
    from export.inputs import find_latest_model
    from train.run import RunDir

    model = args.model or (RunDir(args.run).model_keras if args.run else find_latest_model())
    run = RunDir(args.run or model.parent)
    return model, run.path, args.out or run.export_dir


def _check_folders(data_dir: Path, labels: tuple[str, ...]) -> None:
    """Every label needs its class folder (or CSV rows) in ``data_dir``."""
    from train.data import DatasetError, class_names

    try:
        names = {n.lower() for n in class_names(data_dir)}
    except DatasetError as e:
        raise ExportError(str(e)) from None
    missing = [c for c in labels if c.lower() not in names]
    if missing:
        raise ExportError(f"{data_dir}: no images for label(s) {', '.join(missing)} (classes "
                          f"there: {', '.join(sorted(names))}); pass --data with one folder "
                          "per label, or --labels matching its folders")


def _load_images(args, info, size: int, formats, need_test: bool, manifest):
    """(data folder, calibration images, test images, test labels, validation rule or None)."""
    from export.inputs import load_calibration, load_test, operating_rule
    from train.data import DatasetNotFound, resolve_data_dir

    needs_cal = any(f.needs_calibration for f in formats)
    need_val = (not args.keras_threshold and bool(info.metrics) and bool(info.config)
                and manifest.output == "sigmoid" and args.labels is None)
    if not (needs_cal or need_test or need_val):
        return None, None, None, None, None
    run_data = info.config.get("data")  # where the run was trained, if it still exists
    try:
        data_dir = resolve_data_dir(args.data or (run_data if run_data and Path(run_data).is_dir()
                                                  else None))
    except DatasetNotFound as e:
        if needs_cal or need_test or args.data:
            raise ExportError(str(e)) from None
        print(f"warning: {e}; every file gets the Keras model's threshold", file=sys.stderr)
        return None, None, None, None, None
    labels = tuple(manifest.labels)
    if not info.sources:
        _check_folders(data_dir, labels)
    cal = (load_calibration(data_dir, size, args.calibration_count, args.seed, info, labels)
           if needs_cal else None)
    x, y = (load_test(data_dir, size, bool(info.config.get("exclude_leaked", True)),
                      info.color_constancy, info.border, labels)
            if need_test else (None, None))
    if need_test and len(x) == 0:
        raise ExportError(f"{data_dir}: no test images found (expected test/<class>/ folders, "
                          "or class folders it splits); pass --data, or --skip-parity")
    rule = operating_rule(info, data_dir, size) if need_val else None
    if need_val and rule is None:
        print(f"warning: no validation images for {info.run_dir} in {data_dir}: every file "
              "gets the Keras model's threshold", file=sys.stderr)
    return data_dir, cal, x, y, rule


def run(args, argv: list[str] | None = None) -> int:
    from export.inputs import manifest_from_run, read_run
    from export.pipeline import export_model, image_input_size, load_keras_model
    from export.report import REPORT_MD, format_table
    from export.validate import output_width

    if args.report_only is not None:
        from export.report import rerender

        print(f"wrote {rerender(args.report_only)}")
        return EXIT_OK
    if args.calibration_count < 0 or args.min_calibration < 0:
        raise ExportError("--calibration-count and --min-calibration must be >= 0")
    formats = select_formats(args.formats)
    tolerances = parse_tolerances(args.tolerance)
    model_path, run_dir, out = _resolve_paths(args)
    print(f"Exporting {model_path} -> {out}")
    model = load_keras_model(model_path)
    h, w = image_input_size(model, str(model_path))
    if h != w:
        raise ExportError(f"{model_path}: input {h}x{w} is not square; the data loader needs square input")
    info = read_run(run_dir)
    info.border_override = args.border or ""
    for msg in info.warnings if args.labels is None else []:  # your own model: no run record
        print(msg, file=sys.stderr)
    manifest = manifest_from_run(info)
    apply_contract(manifest, args, output_width(model), model_path)
    skin = manifest.output == "sigmoid" and tuple(manifest.labels) == ("benign", "malignant")
    data_dir, cal, x, y, rule = _load_images(args, info, h, formats, not args.skip_parity,
                                             manifest)
    if cal is not None:
        where = ", ".join(Path(d).name for d in info.sources) if info.sources else data_dir
        print(f"Calibration: {len(cal)} training images from {where}")
    if x is not None:
        from train.data import leak_note

        print(f"Parity: {len(x)} test images from {data_dir}")
        if info.config.get("exclude_leaked", True) and leak_note(data_dir):
            print(leak_note(data_dir))
    if rule is not None:
        print(f"Thresholds: each file's own, {rule.describe()}")
    guard = _guard_data(args, run_dir, data_dir, h, info) if skin else None
    if not skin:
        print("Guard: none (the not-a-lesion guard is for benign/malignant skin-lesion models); "
              "quality gate: off (fitted on skin-lesion images only)")
    results = export_model(model, out, [f.name for f in formats], cal, manifest,
                           test_images=x, test_labels=y, tolerances=tolerances, operating=rule,
                           guard=guard, quality=None if skin else basic_gate(),
                           min_calibration=args.min_calibration,
                           report_extra=_how_made(argv, cal),
                           log=lambda m: print(m, file=sys.stderr if "warning" in m else sys.stdout))
    print()
    print(format_table([r.to_row() for r in results]))
    print(f"\nReport: {out / REPORT_MD}; manifest: {out / 'manifest.json'}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"error: {r.name}: {r.error or r.status}", file=sys.stderr)
    _print_next(out, results, data_dir)
    return EXIT_FAILED if failed else EXIT_OK


def basic_gate():
    """The quality gate of a model that is not a skin-lesion model: off (its bounds were fitted
    on skin-lesion photos; a dark or flat image may be one of your classes)."""
    from edge.manifest import QualityGate

    return QualityGate(enabled=False, min_sharpness=0.0,
                       fitted_on="off: the gate's bounds are fitted on skin-lesion images only")


def _how_made(argv: list[str] | None, cal) -> dict:
    """The export report's record of its own command line and calibration images.

    >>> _how_made(["--run", "runs/a b"], None)
    {'command': "python export/convert.py --run 'runs/a b'", 'calibration_images': 0}
    """
    import shlex

    argv = sys.argv[1:] if argv is None else argv
    return {"command": shlex.join(["python", "export/convert.py", *argv]),
            "calibration_images": 0 if cal is None else len(cal)}


def _guard_data(args, run_dir: Path, data_dir, size: int, info=None):
    """The guard's fitting images (the run's split, corrected as the runner will), or None
    with a warning."""
    from export.guard_attach import load_guard_data
    from train.run import RunDir

    if args.no_guard:
        return None
    from export.inputs import source_split

    fix = (info.color_constancy, info.border) if info is not None else ("none", "none")
    split = source_split(info) if info is not None and info.sources else None
    data = (load_guard_data(RunDir(run_dir).config_json, data_dir, size, *fix, sources=split)
            if data_dir else None)
    if data is None:
        print("warning: no training/validation images for the guard: exporting without it "
              "(pass --data)", file=sys.stderr)
        return None
    if args.guard_k is not None:
        if args.guard_k <= 0:
            raise ExportError(f"--guard-k must be positive, got {args.guard_k}")
        data.k = args.guard_k
    print(f"Guard: fitted on {data.described}")
    return data


def _print_next(out: Path, results, data_dir) -> None:
    ok = [r for r in results if r.passed]
    if not ok:
        return
    pick = next((r for r in ok if r.name == "tflite_int8"), ok[0])
    images = data_dir / "test" if data_dir else "<images or folder>"
    print("\nNext:")
    print(f"  python edge/classify.py --model {pick.path} {images}")
    print(f"  python benchmarks/latency.py --artifacts {out}")


def _joined(argv: list[str]) -> list[str]:
    """``--input-range -1,1`` as ``--input-range=-1,1`` (argparse reads ``-1,1`` as an option).

    >>> _joined(["--input-range", "-1,1", "--run", "r"])
    ['--input-range=-1,1', '--run', 'r']
    """
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--input-range" and i + 1 < len(argv):
            out.append(f"--input-range={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_joined(sys.argv[1:] if argv is None else list(argv)))
    try:
        return run(args, argv)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:  # e.g. an unknown --formats name
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: no partial artifact was left under its final name", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
