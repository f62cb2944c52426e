"""Write MODEL_CARD.md for a run and its exported files, from measured files only.

The run says what it is (``RUN/description.json``, ``train/description.py``: written by
whatever trained it); the export folder says what was shipped (``manifest.json``: layout,
input corrections, thresholds, guard and quality gate; ``export_report.json``: quantization);
the shipped int8 file is run again on the test split with the edge runner
(``export/artifact_metrics.py``); a latency report (``benchmarks/latency.py``) adds its table
and ``RUN/card/*.json`` adds measured sections (e.g. ``research/describe.py``'s), in file-name
order. The card knows no run type; every number is read, none is typed here.

Examples:
    python export/card.py --run runs/demo --models runs/demo/export --out runs/demo/MODEL_CARD.md
    python export/card.py --run runs/allsrc-160 --models models \\
        --bench runs/allsrc-160/bench-models/report.json
    >>> _pi4_note({"reference": {"pi4_ms": {"fp32": 46.0, "int8": 17.0}}})
    'published Pi 4 figure (fp32 46 ms, int8 17 ms)'
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core import DISCLAIMER  # noqa: E402
from core.digits import down, pct  # noqa: E402
from core.helpformat import DefaultsHelp, program  # noqa: E402
from edge.manifest import Manifest  # noqa: E402
from export.artifact_metrics import NAMES, ci_rows  # noqa: E402
from train.description import RunDescription, Section  # noqa: E402
from train.run import RunDir  # noqa: E402

INT8 = "model_int8.tflite"  # the shipped file whose test metrics the card reports


@dataclass
class CardInputs:
    """Everything the card reports, read from files by ``main``."""

    run: RunDir
    models: Path
    desc: RunDescription
    int8: dict | None = None  # the shipped int8 file's test metrics (``artifact_metrics``)
    bench: dict | None = None  # benchmarks/latency.py report.json
    sections: list[Section] = field(default_factory=list)  # RUN/card/*.json
    card_command: str = ""  # the command that wrote this card
    data_dir: Path | None = None  # the dataset whose test split gave ``int8`` (None: default)

    def __post_init__(self):
        self.met = self.run.metrics()
        self.man = Manifest.load(self.models / "manifest.json")
        self.ship = self.man.for_artifact(self.models / INT8)  # its own threshold
        self.exp = json.loads((self.models / "export_report.json").read_text())


def _intro(d: RunDescription) -> list[str]:
    return [
        f"# Model card: {d.title}, int8 edge model", "",
        f"> **{DISCLAIMER}** It must not be used to decide whether a lesion needs care; anyone "
        "worried about a lesion should see a clinician.", "",
        "## Intended use",
        "- Teaching and research on on-device medical-image classification: quantization, "
        "latency, calibration and failure modes on a Raspberry Pi-class device.",
        "- Not for screening, triage, diagnosis or any clinical decision, on any population.", ""]


def _data(d: RunDescription) -> list[str]:
    return ["## Training data and its limits", *(f"- {b}" for b in d.data + d.limits), ""]


def _io(man: Manifest) -> str:
    """The manifest's input and output layout in words."""
    lo, hi = man.pixel_range
    scale = ("raw pixels 0..255 (the model scales them)" if (lo, hi) == (0, 255)
             else f"pixels 0..255 mapped to {lo:g}..{hi:g} by the runner")
    size = f"input {man.input_height}x{man.input_width} {man.color_order}, {scale}"
    if man.output == "softmax":
        outs = f"outputs 0-{len(man.labels) - 1}: P(class) for {', '.join(man.labels)}"
    else:
        outs = f"output 0 = P({man.positive_label})" + (
            f", outputs 1-{len(man.classes)}: P(type) for {', '.join(man.classes)}"
            if man.classes else "")
    outs += (f", output {man.modality_index}: P({man.modalities[1]} photo), which picks the "
             "threshold" if man.modality_index >= 0 and len(man.modalities) > 1 else "")
    outs += (f", output {man.guard.index}: the not-a-lesion guard's score"
             if man.guard is not None else "")
    return f"{size}; one output vector of {man.output_size}: {outs}"


def _corrections(man: Manifest) -> list[str]:
    """The manifest's input corrections, which every runner applies before the model."""
    fixes = ([f"a dark dermoscope ring or dark corners filled with the image's median colour "
              f"(`border: {man.border}`, edge.preprocess.fill_dark_border; the runs were trained "
              "without it)"] if man.border not in ("", "none") else [])
    fixes += ([f"colour constancy `{man.color_constancy}`"]
              if man.color_constancy not in ("", "none") else [])
    return [f"- Before the model, every runner applies: {'; '.join(fixes)}."] if fixes else []


def _model(c: CardInputs) -> list[str]:
    d = c.desc
    return ["## Model", *([f"- {d.model}"] if d.model else []),
            *(f"- {t}" for t in d.training),
            *([f"- Augmentation: {d.augmentation}"] if d.augmentation else []),
            f"- {_io(c.man)}.", *_corrections(c.man), ""]


def _threshold(c: CardInputs) -> list[str]:
    man, ship, why = c.man, c.ship, f" {c.desc.threshold}" if c.desc.threshold else ""
    if man.positive_index < 0:
        head = ["- No threshold: the label is the most likely class."]
    elif ship.modality_thresholds:
        head = [f"- One threshold per modality, on the temperature-scaled probability; the "
                f"model's modality output (P({man.modalities[1]}) >= 0.5) picks it: "
                + ", ".join(f"**{m} {down(t)}**" for m, t in ship.modality_thresholds.items())
                + f". Rule: {ship.threshold_rule}.{why}"]
    else:
        head = [f"- Threshold **{down(ship.threshold)}** on the temperature-scaled probability "
                f"of `{man.positive_label}`: {ship.threshold_rule}.{why}"]
    own = ([f"- The float Keras model's threshold, by the same rule on its own validation "
            f"outputs, is {down(man.threshold)}: int8 rounding moves the probabilities a little, so "
            "each exported file gets its own (`export/threshold.py`)."]
           if man.positive_index >= 0 and ship.threshold != man.threshold else [])
    cal = c.met.get("calibration") or {}
    ece = (f" Test ECE (10 bins, float model): {down(cal['ece_raw'])} raw, "
           f"{down(cal['ece_calibrated'])} scaled" if "ece_raw" in cal else "")
    ece += (f"{';' if ece else ' Test ECE (10 bins),'} shipped int8 model, scaled: "
            f"{down(c.int8['ece'])}" if c.int8 and "ece" in c.int8 else "")
    return ["## Operating threshold and calibration", *head, *own,
            f"- Temperature T = {down(man.temperature, 3)}"
            + (", fitted on validation." if man.temperature != 1.0 else " (no scaling).")
            + (f"{ece}." if ece else ""), ""]


def _binary(m: dict) -> bool:
    return "ci95" in m and all(k in m and k in m["ci95"] for k in NAMES)


def _metrics(c: CardInputs) -> list[str]:
    keras_t = c.met.get("test") or {}
    float_rows = (["Float Keras model (the run's metrics.json):", "",
                   "| metric | value | 95% CI |", "|---|---|---|", *ci_rows(keras_t), ""]
                  if _binary(keras_t) else [])
    if not c.int8:
        why = (f"the export has no `{INT8}`" if not (c.models / INT8).is_file() else
               f"the model is a softmax over {len(c.man.labels)} classes")
        return ["## Test metrics", "",
                f"No binary table for the shipped file: {why}. The float model's per-class "
                f"test metrics are in the run's metrics.json (`{c.run.metrics_json}`, "
                "train/evaluate.py).", "", *float_rows]
    i8 = c.int8
    n = i8["tp"] + i8["fn"] + i8["tn"] + i8["fp"]
    return [f"## Test metrics at the shipped threshold ({n} test images, bootstrap 95% CI)", "",
            f"Shipped int8 TFLite model (`{c.models / INT8}`, run with the edge runner):", "",
            "| metric | value | 95% CI |", "|---|---|---|", *ci_rows(i8), "",
            f"Confusion: TP {i8['tp']}, FN {i8['fn']}, TN {i8['tn']}, FP {i8['fp']}.", "",
            *float_rows]


def _guard(c: CardInputs) -> list[str]:
    """The quality gate and the not-a-lesion guard the shipped files carry (from the manifest)."""
    from export.report import guard_markdown

    g = c.man.guard
    lines = guard_markdown(dataclasses.asdict(g) if g else None, dataclasses.asdict(c.man.quality))
    if not lines:
        return []
    return [("## Input checks: " + ln[3:]) if ln.startswith("## ") else ln for ln in lines] + [
        "Such inputs get the status `unusable` or `not_a_lesion` and no label. The guard knows "
        "the training images and rejects what is far from them; it is no proof that an "
        "accepted image is of a kind the model knows.", ""]


def _cell(v, share: bool = False) -> str:
    """A score, or '-' for a value a report does not hold."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return pct(v) if share else down(v)


def _quantization(c: CardInputs) -> list[str]:
    exp = c.exp
    n = exp.get("calibration_images")
    L = [f"## Quantization effects (export parity report, same {exp['n_test']} images)", "",
         "int8 formats are converted from a bias-corrected copy of the model "
         "(`export/bias_correction.py`): BatchNorm means absorb the expected int8 weight-rounding "
         "error, so quantized outputs stay centred on the float ones."
         + (f" Activation ranges are calibrated on {n:,} training images." if n else "")
         + " Each file is scored at its own threshold (same rule, its own validation outputs). "
         "Label agreement with the float model: both at the float threshold (the format's "
         "effect), and the file at its own threshold (the labels a user of the file sees).", "",
         "| format | size | threshold | accuracy | AUC | sensitivity | specificity | agreement, "
         "float thr | agreement, own thr | max abs dp | status |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in exp["rows"]:
        p = r.get("parity") or {}
        if p:
            scores = ("threshold", "accuracy", "roc_auc", "sensitivity", "specificity")
            L.append(f"| {r['format']} | {r['bytes'] / 1e6:.2f} MB | "
                     + " | ".join(_cell(p.get(k)) for k in scores)
                     + f" | {_cell(p.get('agreement'), True)} | "
                     f"{_cell(p.get('decision_agreement'), True)} | {p['max_abs_diff']:.3g} | "
                     f"{r['status']} |")
    return L + [f"\nKeras float accuracy on the same images: {down(exp['keras_accuracy'])}.", ""]


def _pi4_note(bench: dict) -> str:
    """How the Pi 4 estimate is scaled, with the published figures the report used."""
    ms = (bench.get("reference") or {}).get("pi4_ms") or {}
    figures = ", ".join(f"{k} {v:g} ms" for k, v in ms.items())
    return f"published Pi 4 figure ({figures})" if figures else "published Pi 4 figure"


def _latency(c: CardInputs) -> list[str]:
    bench = c.bench
    if not bench:
        return []
    mach = bench["machine"]
    L = ["## Latency (measured here; Raspberry Pi figures are estimates)", "",
         f"Machine: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores, measured "
         f"{mach.get('timestamp', '?')}; command: "
         f"`{bench.get('command', 'python benchmarks/latency.py')}`. Pi 4 estimate = (artifact "
         f"p50 / MobileNetV2-1.0 reference p50, same run) x {_pi4_note(bench)}.", "",
         "| format | runtime | threads | p50 ms | p90 ms | Pi 4 estimate ms |",
         "|---|---|---|---|---|---|"]
    shipped = {a.sha256 for a in c.man.artifacts.values()}
    for r in sorted(bench["rows"], key=lambda r: (r["format"] or "", r["threads"] or 0)):
        if r.get("role") == "model" and r.get("sha256") in shipped and r["status"] == "ok":
            est = f"{r['pi4_est_ms']:.1f} (estimate)" if r.get("pi4_est_ms") else "n/a"
            L.append(f"| {r['format']} | {r['runtime']} | {r['threads']} | {r['p50_ms']:.2f} | "
                     f"{r['p90_ms']:.2f} | {est} |")
    return L + [""]


def _reproduce(c: CardInputs) -> list[str]:
    """The run's own commands, then the export, int8 metrics, benchmark and card commands."""
    export = c.exp.get("command") or f"python export/convert.py --run {c.run} --out {c.models}"
    bench = (c.bench or {}).get("command") or f"python benchmarks/latency.py --artifacts {c.models}"
    data = f" --data {c.data_dir}" if c.data_dir else ""
    check = ([f"python export/evaluate_artifact.py --model {c.models / INT8}{data}   # the int8 "
              "table above, from the export folder and the dataset only"] if c.int8 else [])
    return ["## Reproduce", "", "```bash", *c.desc.reproduce, export, *check, bench,
            c.card_command or f"python export/card.py --run {c.run} --models {c.models}",
            "```", ""]


def render(c: CardInputs) -> str:
    """The whole card as Markdown."""
    return "\n".join([*_intro(c.desc), *_data(c.desc), *_model(c), *_threshold(c),
                      *_metrics(c), *_guard(c), *_quantization(c), *_latency(c),
                      *(s.markdown() for s in c.desc.sections + c.sections), *_reproduce(c)])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=program("export/card.py"),
                                 description=__doc__.split("\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("-r", "--run", required=True, type=Path,
                    help="training run folder (holding description.json)")
    ap.add_argument("-m", "--models", default=Path("models"), type=Path,
                    help="its export folder (manifest.json, export_report.json, model_int8.tflite)")
    ap.add_argument("--bench", type=Path, default=None, help="benchmarks/latency.py report.json")
    ap.add_argument("-d", "--data", default=None,
                    help="dataset folder for the int8 file's test metrics (default: the run's)")
    ap.add_argument("-o", "--out", default=Path("MODEL_CARD.md"), type=Path)
    return ap


def _command(args) -> str:
    return (f"python export/card.py --run {args.run} --models {args.models}"
            + (f" --bench {args.bench}" if args.bench else "")
            + (f" --data {args.data}" if args.data else "")
            + (f" --out {args.out}" if args.out != Path("MODEL_CARD.md") else ""))


def _int8_metrics(run: RunDir, models: Path, data: str | None) -> tuple[dict | None, Path | None]:
    """The shipped int8 file on the test split of ``data`` (default: the run's dataset) and
    that folder (``None`` when it is the tools' default), for a sigmoid model; ``(None, None)``
    otherwise."""
    from export.artifact_metrics import artifact_metrics
    from train.data import DatasetNotFound, resolve_data_dir

    if not (models / INT8).is_file() or Manifest.load(models / "manifest.json").output != "sigmoid":
        return None, None
    data_dir = resolve_data_dir(data or run.config().get("data") or None)
    try:  # the Reproduce block names the folder only where the tools would not find it
        usual = resolve_data_dir(None)
    except DatasetNotFound:
        usual = None
    return artifact_metrics(models / INT8, data_dir), None if data_dir == usual else data_dir


def _bench(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read it ({e.__class__.__name__}); run "
                         "benchmarks/latency.py first, or leave out --bench") from None


def main(argv: list[str] | None = None) -> int:
    from core.atomic import atomic_write_text
    from edge.manifest import ManifestError
    from train.data import DatasetNotFound
    from train.description import DescriptionError, read_sections

    args = build_parser().parse_args(argv)
    run = RunDir(args.run)
    for f in (args.models / "manifest.json", args.models / "export_report.json"):
        if not f.is_file():
            print(f"error: {f} not found: export the run first (python export/convert.py "
                  f"--run {run} --out {args.models})", file=sys.stderr)
            return 2
    try:
        desc, sections = RunDescription.read(run), read_sections(run)
        int8, data_dir = _int8_metrics(run, args.models, args.data)
        bench = _bench(args.bench)
    except (DescriptionError, DatasetNotFound, ManifestError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    card = CardInputs(run, args.models, desc, int8, bench, sections, _command(args), data_dir)
    atomic_write_text(args.out, render(card))
    print(f"wrote {args.out}")
    print(f"next: less {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
