"""Describe a shipped-recipe run for its model card: description.json and the measured sections.

Writes ``RUN/description.json`` when it is missing (``research.typed_run.describe``: a run
trained before the recipe wrote it) and the sections only this recipe can measure, one JSON
``train.description.Section`` per file in ``RUN/card/`` (``export/card.py`` renders them in
file-name order after its own sections): the project's bar (``10-bar.json``), the exported
int8 file per source, modality, Fitzpatrick type and lesion type on the run's validation
images (``20-sources.json``), leave-one-acquisition-group-out (``30-loso.json``), simulated
dermoscope shifts (``40-shifts.json``) and a source the run never trained on
(``50-unseen.json``). A section not measured this time is removed, so the card never shows a
stale one. Every number is read from a file or measured here, none is typed.

Example:
    python research/describe.py --run runs/allsrc-160 --models models \\
        --loso "lesion-type head (1 view, head only)=runs/loso-allsrc-160/loso.json"
    python export/card.py --run runs/allsrc-160 --models models
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.digits import down, pct  # noqa: E402
from core.helpformat import DefaultsHelp, program  # noqa: E402
from edge.manifest import Manifest  # noqa: E402
from train.description import Section, Table  # noqa: E402
from train.run import RunDir  # noqa: E402

FILES = ("10-bar.json", "20-sources.json", "30-loso.json", "40-shifts.json", "50-unseen.json")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=program("research/describe.py"),
                                 description=__doc__.split("\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("--run", required=True, type=Path, help="run folder of research/train_typed.py")
    ap.add_argument("--models", default=Path("models"), type=Path,
                    help="its export folder (model_int8.tflite and manifest.json)")
    ap.add_argument("--data", default=None,
                    help="the primary dataset folder, for the test split (default: the run's)")
    ap.add_argument("--unseen", default="auto",
                    help="a MANIFEST.csv source folder the run never trained on, measured per "
                         "acquisition group and lesion type; auto: ham10000-extra beside the "
                         "dataset; none: skip")
    ap.add_argument("--loso", nargs="*", default=[], metavar="LABEL=FILE[#MEMBER]",
                    help="leave-one-acquisition-group-out results: loso.json of "
                         "research/train_typed.py --loso-only (#MEMBER: one member of a file "
                         "that holds several)")
    ap.add_argument("--no-shifts", action="store_true",
                    help="leave out the simulated dermoscope shifts (research/shift_eval.py)")
    return ap


def read_loso(spec: str) -> tuple[str, dict]:
    """``LABEL=FILE[#MEMBER]`` -> (label, {group: {n, n_malignant, auc_held_out, ...}}).

    Raises ``ValueError`` with a one-line reason (bad form, missing file, no LOSO results).

    >>> read_loso("no-equals-sign")
    Traceback (most recent call last):
    ...
    ValueError: --loso 'no-equals-sign': expected LABEL=FILE or LABEL=FILE#MEMBER
    """
    label, sep, where = spec.partition("=")
    if not (sep and label and where):
        raise ValueError(f"--loso {spec!r}: expected LABEL=FILE or LABEL=FILE#MEMBER")
    path, _, member = where.partition("#")
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"--loso {path}: cannot read it ({e.__class__.__name__}); run the "
                         "leave-one-group-out command first") from None
    if member:
        doc = (doc.get("members") or {}).get(member, {}).get("loso")
    if not isinstance(doc, dict) or not doc or not all(
            isinstance(v, dict) and "n" in v for v in doc.values()):
        raise ValueError(f"--loso {where}: no leave-one-group-out results there"
                         + ("" if member else " (a teacher.json needs #MEMBER)"))
    return label, doc


def bar_section(int8: dict, met: dict) -> Section | None:
    """The project's bar (``research/targets.py``) against the shipped int8 model."""
    from research.targets import BAR, PUBLIC_BEST, SOURCE

    keras_t = met.get("test") or {}
    if "accuracy" not in keras_t or "accuracy" not in int8:
        return None
    acc, (lo, hi) = keras_t["accuracy"], keras_t["ci95"]["roc_auc"]
    rows = [[c.name, down(c.value(int8, acc)), f">= {c.minimum:g}",
             "yes" if c.met(int8, acc) else "**no**"] for c in BAR]
    text = (f"Public results on this split top out near {PUBLIC_BEST[1]:g} accuracy "
            f"({PUBLIC_BEST[0]}). What was tried and what limits it is in docs/experiments.md: "
            f"every run trained on 2 CPU cores within a few hours; the validation split is "
            f"{met['n_val']} images, so model selection is noisy (even on {met['n_test']} test "
            f"images the float model's AUC CI is {down(lo, 3)}-{down(hi, 3)}) and a threshold "
            "set exactly at the target on validation has no margin for sampling noise: for the "
            "first models it landed below the target on test (docs/experiments.md), hence the "
            "lower-bound rule above.")
    return Section(f"Against the project's bar ({SOURCE})", [text],
                   Table(["criterion", "shipped int8", "bar", "met"], rows))


def own_point(u: dict) -> list[str]:
    """What a threshold set on one source itself would do: is the keratosis problem the
    ranking or the shared threshold? (``research.source_eval.at_sensitivity``; a diagnostic.)"""
    o = u.get("at_sensitivity_0.90", {}).get(u["folder"])
    if not o:
        return []
    types = ", ".join(f"{t} {pct(v)}" for t, v in o["called_malignant"].items())
    return [f"Diagnostic only, not how the runner decides: a threshold set on the "
            f"{u['folder']} images for sensitivity 0.90 ({down(o['threshold'])}) would give "
            f"specificity {down(o['specificity'])} and call malignant: {types}."]


def _md(table: str) -> str:
    return table.rstrip("\n")


def sources_section(rep: dict, ship: Manifest, primary: str) -> Section:
    """The shipped file on each source's validation images, per source and lesion type."""
    from research.source_eval import table, types_line

    v = rep["val"]
    cols = ("n", "n_malignant", "roc_auc", "sensitivity", "specificity")
    thr = (", ".join(f"{m} {down(t)}" for m, t in ship.modality_thresholds.items())
           + " (each image at its predicted modality's)" if ship.modality_thresholds
           else down(ship.threshold))
    text = [f"Through the edge runner at the shipped threshold {thr} "
            "(`python research/evaluate_sources.py`); the model was not trained on these "
            "images:", _md(table(v["per_source"], cols))]
    if v.get("per_modality"):
        text += ["Per modality (the image's true modality; how often the modality output is "
                 "right: " + ", ".join(f"{k} {pct(r)}" for k, r in
                                        v.get("modality_accuracy", {}).items()) + "):",
                 _md(table(v["per_modality"], cols))]
    if v.get("per_fitzpatrick"):
        text += ["Per Fitzpatrick skin type, where the source records it (few images per row "
                 "above type III: read them as anecdotes):", _md(table(v["per_fitzpatrick"], cols))]
    text += ["Per lesion type, the share called malignant (a benign type's false-positive rate, "
             "a malignant type's sensitivity) and how often the most likely type is the right "
             "one:", _md(table(v["per_type"], ("n", "malignant", "called_malignant",
                                               "type_accuracy")))]
    if v.get("mel_vs_nv_auc") is not None:
        text.append(f"Melanoma vs. nevus ROC AUC: {down(v['mel_vs_nv_auc'])}.")
    text += [types_line(name, by_label) + " The decision is P(malignant) at the threshold, not "
             "the type." for name, by_label in v.get("types_without_dx", {}).items()]
    for name in v.get("at_sensitivity_0.90", {}):
        if v["per_type"] and name != primary:
            text += own_point({**v, "folder": name})
    text.append("Keratoses, carcinomas, dermatofibromas and vascular lesions come from few "
                "images each: treat these shares as rough.")
    return Section("Per source, modality and lesion type (validation images, shipped int8 file)",
                   text)


def loso_section(loso: dict) -> Section:
    """Leave-one-acquisition-group-out, the stand-in for another clinic's images."""
    groups = sorted({g for res in loso.values() for g in res})
    counts = {g: next(res[g] for res in loso.values() if g in res) for g in groups}

    def cell(r: dict | None) -> str:
        if not r or "auc_held_out" not in r:
            return "-"
        val = (f" (validation {down(r['auc_val_held_out'])} held out / "
               f"{down(r['auc_val_seen'])} seen)" if "auc_val_seen" in r else "")
        return f"{down(r['auc_held_out'])}{val}"

    text = ("Each part below was trained again without one HAM10000 acquisition group (device "
            "and practice) and scored on all of that group's images: ROC AUC of P(malignant); "
            "in brackets, the group's validation images scored by that part trained without "
            "the group and by the one trained with it. These are parts of the shipped model "
            "(its head on frozen features), not the whole model. A held-out group also takes "
            "lesion types away (most keratoses and carcinomas of HAM10000 are in rosendahl), "
            "and groups with 3 malignant images give AUCs that mean little.")
    columns = ["part, trained without the group"] + [
        f"{g} ({counts[g]['n']}, {counts[g]['n_malignant']} malignant)" for g in groups]
    rows = [[label] + [cell(res.get(g)) for g in groups] for label, res in loso.items()]
    return Section("Leave one acquisition group out (a stand-in for another clinic)", [text],
                   Table(columns, rows))


def shifts_section(rows: list) -> Section:
    """The shipped file under simulated dermoscope shifts (``research/shift_eval.py``)."""
    from research.shifts import table

    return Section("Simulated dermoscope shifts (validation images, shipped int8 file)", [
        "Each validation image shifted in one fixed way at a time, at the model's input size, "
        "then through the edge runner at the shipped threshold (`python research/shift_eval.py "
        "--run RUN`); in brackets the change from the unshifted image. A shift that moves "
        "specificity but not ROC AUC moves the probabilities across the one threshold, as "
        "another clinic's device can; \"ring\" darkens the corners outside a circle, as many "
        "dermoscopes do.", _md(table(rows))])


def unseen_section(u: dict, ship: Manifest) -> Section:
    """The shipped file on a source it never trained on: per acquisition group and type."""
    from research.source_eval import table

    o = u["overall"]
    return Section(f"Other lesion types and acquisition groups ({u['folder']}, never trained on)", [
        f"The {u['n']} images of `{u['folder']}` (HAM10000: seven lesion types, four Vienna and "
        "Queensland acquisition groups; without the twins of training images), through the "
        f"edge runner at the shipped threshold {down(ship.threshold)}: ROC AUC "
        f"{down(o['roc_auc'])}, sensitivity {down(o['sensitivity'])}, specificity "
        f"{down(o['specificity'])}. Each acquisition group stands in for another clinic's "
        "dermoscope (a group with one or two malignant images says little):",
        _md(table(u["per_group"], ("n", "n_malignant", "roc_auc", "sensitivity", "specificity"))),
        "Per lesion type, the share called malignant (a benign type's false-positive rate, a "
        "malignant type's sensitivity):",
        _md(table(u["per_type"], ("n", "malignant", "called_malignant"))),
        *own_point(u),
        "The model never saw keratoses, carcinomas, dermatofibromas or vascular lesions and "
        "calls most keratoses malignant: do not use it on them."])


def measure_shifts(run: RunDir, model: Path, data_dir: Path) -> list:
    """The shipped file on validation images under each simulated dermoscope shift."""
    from research.shifts import SHIFTS, shift_report

    cfg = run.config()
    sources = cfg.get("data_sources") or [str(data_dir)]
    split_seed = int(cfg.get("split_seed", -1))  # TrainConfig.val_seed: the run's validation
    return shift_report(model, sources, list(SHIFTS), float(cfg.get("val_fraction", 0.15)),
                        split_seed if split_seed >= 0 else int(cfg.get("seed", 0)))


def measure_unseen(run: RunDir, model: Path, data_dir: Path, arg: str) -> dict | None:
    """Another source (default: ``ham10000-extra`` beside the dataset) through the shipped
    file, when it exists and the run did not train on it."""
    from research.multisource import HAM_NAME, MANIFEST_CSV
    from research.source_metrics import unseen_report

    if arg == "none":
        return None
    folder = Path(data_dir).parent / HAM_NAME if arg == "auto" else Path(arg)
    trained = {Path(s).name for s in run.config().get("data_sources", [])}
    if not (folder / MANIFEST_CSV).is_file() or folder.name in trained:
        return None
    return unseen_report(model, folder)


def measure_sources(run: RunDir, model: Path) -> dict | None:
    """For a run over several sources, the shipped file on each source's validation images
    (``research.source_metrics.source_report``); ``None`` otherwise."""
    from research.source_metrics import source_report

    cfg = run.config()
    sources = cfg.get("data_sources") or []
    if len(sources) < 2:
        return None
    return source_report(model, sources, float(cfg.get("val_fraction", 0.15)),
                         int(cfg.get("seed", 0)), splits=("val",))  # test: artifact_metrics


def sections(run: RunDir, models: Path, data_dir: Path, loso: dict, unseen: str = "auto",
             shifts: bool = True) -> dict[str, Section | None]:
    """``{file name in RUN/card/: Section or None (not measured: remove the file)}``;
    ``loso``: label -> ``read_loso`` results; ``unseen``: ``--unseen``."""
    from export.artifact_metrics import artifact_metrics

    model = models / "model_int8.tflite"
    ship = Manifest.load(models / "manifest.json").for_artifact(model)
    rep = measure_sources(run, model)
    unseen = measure_unseen(run, model, data_dir, unseen)
    primary = Path((run.config().get("data_sources") or [str(data_dir)])[0]).name
    return dict(zip(FILES, (
        bar_section(artifact_metrics(model, data_dir), run.metrics()),
        sources_section(rep, ship, primary) if rep else None,
        loso_section(loso) if loso else None,
        shifts_section(measure_shifts(run, model, data_dir)) if shifts else None,
        unseen_section(unseen, ship) if unseen else None)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = RunDir(args.run)
    for f in (run.config_json, run.metrics_json, args.models / "manifest.json",
              args.models / "model_int8.tflite"):
        if not f.is_file():
            print(f"error: {f} not found (train with research/train_typed.py and export with "
                  "export/convert.py first)", file=sys.stderr)
            return 2
    from research.typed_run import describe
    from train.data import DatasetNotFound, resolve_data_dir

    try:
        data_dir = resolve_data_dir(args.data or run.config().get("data") or None)
        loso = dict(read_loso(s) for s in args.loso)  # fails before anything is measured
    except (DatasetNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not run.description_json.is_file():
        print(f"wrote {describe(run.path).write(run)}")
    measured = sections(run, args.models, data_dir, loso, args.unseen, not args.no_shifts)
    for name, section in measured.items():
        path = run.card_dir / name
        if section is None:
            path.unlink(missing_ok=True)
        else:
            run.card_dir.mkdir(parents=True, exist_ok=True)
            print(f"wrote {section.write(path)}")
    print(f"next: python export/card.py --run {run} --models {args.models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
