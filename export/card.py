"""MODEL_CARD.md from measured files only: every number is read, none is typed here.

Inputs (``export/model_card.py`` gathers them): the training run (``train.run.RunDir``:
config, summary, metrics), the shipped export folder (``manifest.json``,
``export_report.json``), the int8 artifact's test metrics (``export/artifact_metrics.py``), the
dataset's training-image count, optionally a latency report (``benchmarks/latency.py``), and
the project's bar (``research/targets.py``).

Example:
    >>> _pi4_note({"reference": {"pi4_ms": {"fp32": 46.0, "int8": 17.0}}})
    'published Pi 4 figure (fp32 46 ms, int8 17 ms)'
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from core import DISCLAIMER
from core.digits import down, pct
from edge.manifest import PHONE_SOURCE, Manifest
from export.artifact_metrics import ci_rows
from research.targets import BAR, PUBLIC_BEST, SOURCE
from train.run import RunDir


@dataclass
class CardInputs:
    """Everything the card reports, read from files by ``export/model_card.py``."""

    run: RunDir
    models: Path
    int8: dict  # the shipped int8 file's test metrics (``artifact_metrics``)
    n_train_images: int  # the dataset's train/ folder (validation is carved from it)
    bench: dict | None = None  # benchmarks/latency.py report.json
    unseen: dict | None = None  # export/source_metrics.unseen_report (another source)
    sources: dict | None = None  # export/source_metrics.source_report (the run's own sources)
    source_counts: dict | None = None  # training images per source folder name (several sources)
    loso: dict | None = None  # label -> leave-one-group-out results (model_card.read_loso)
    shifts: list | None = None  # research/shift_eval.py rows (simulated dermoscope shifts)

    def __post_init__(self):
        self.cfg, self.summ, self.met = self.run.config(), self.run.summary(), self.run.metrics()
        self.man = Manifest.load(self.models / "manifest.json")
        self.ship = self.man.for_artifact(self.models / "model_int8.tflite")  # its own threshold
        self.exp = json.loads((self.models / "export_report.json").read_text())


def _phases(cfg: dict) -> str:
    from train.config import TrainConfig

    c = TrainConfig(**{k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__})
    return ", then ".join(f"{n} {e} epochs at lr {lr:g}" for n, e, lr in c.phases())


def _describe(cfg: dict, summ: dict) -> str:
    """One run: architecture, input, parameters, how it was trained and for how long."""
    name = f"`{cfg['model']}`" + (f" (alpha {cfg['alpha']})" if cfg["model"] == "mobilenetv2" else "")
    extra = f", distilled from `{cfg['teacher']}` (weight {cfg['distill_weight']:g})" if cfg.get(
        "teacher") else ""
    return (f"{name} at {cfg['image_size']}x{cfg['image_size']}, {summ.get('params', 0):,} parameters, "
            f"best validation AUC {down(summ.get('best_val_auc', float('nan')))}; trained with "
            f"`python train/train.py` ({_phases(cfg)}, batch {cfg['batch_size']}, class weights "
            f"{'on' if cfg['class_weight'] else 'off'}, flip/rotation/zoom/brightness/contrast "
            f"augmentation, seed {cfg['seed']}{extra}) in {summ.get('train_seconds', 0) / 60:.1f} min")


TYPED_MODELS = ("typed_ensemble", "typed_mobilenetv2", "probe")  # research/typed_run.py run folders


def _describe_typed(cfg: dict, met: dict) -> str:
    """One lesion-type run (``research/train_typed.py`` or ``train/probe_run.py``).

    >>> _describe_typed({"model": "probe", "encoder": "mobilenetv2", "C": 0.01, "image_size": 224},
    ...                 {"val_mean_source_auc": 0.9})[:60]
    'linear probe (multinomial logistic regression, C 0.01) on fr'
    """
    size = cfg["image_size"]
    # a run written before write_run scored it keeps its best epoch's score
    score = met.get("val_mean_source_auc", met.get("best_val_mean_auc", float("nan")))
    worst = (f", worst source {down(met['val_worst_source_auc'])} (the selection rule)"
             if cfg.get("select") == "worst" and "val_worst_source_auc" in met else "")
    if cfg["model"] == "probe":
        what = (f"linear probe (multinomial logistic regression, C {cfg['C']:g}) on frozen ImageNet "
                f"`{cfg['encoder']}` pooled features at {size}x{size} (`python train/probe_run.py`)")
    else:
        b = cfg.get("backbone", {})
        head_on = ("the images themselves" if cfg.get("head_views") == 1 else "every view")
        what = (f"lesion-type head on ImageNet MobileNetV2 (alpha {cfg.get('alpha', 1.0):g}) at {size}x{size}, "
                f"cut at `{b.get('cut', '?')}`, {cfg.get('views', '?')} cached "
                f"{cfg.get('augment', 'dermoscope')}-augmented views, {cfg.get('head_epochs', '?')} "
                f"head epochs on {head_on} and {cfg.get('top_epochs', '?')} top-block epochs on "
                "every view"
                + (", then a modality head (dermoscopic or phone photo)"
                   if cfg.get("modalities") else "") + " (`python research/train_typed.py`)")
    return f"{what}; mean per-source validation AUC {down(score)}{worst}"


def _typed_lines(cfg: dict, met: dict, io: str) -> list[str]:
    if cfg["model"] != "typed_ensemble":
        return [f"- {_describe_typed(cfg, met)}.", f"- {io}."]
    runs = cfg.get("runs") or [cfg["binary_run"], cfg["typed_run"]]
    weights = cfg.get("weights") or [cfg["weight_binary"], 1 - cfg["weight_binary"]]
    given = " ".join(f"{r}={w:g}" for r, w in zip(runs, weights))
    lines = [f"- Mix of {len(runs)} runs in one graph (`python train/combine_typed.py --runs {given}`): "
             "P(malignant) is their weighted mean, the lesion types the type runs' weighted mean; "
             f"type runs on one frozen backbone share it; {cfg['params']:,} parameters in all; {io}.",
             "- Runs (weights above):"]
    for r in runs:
        member = RunDir(r)
        mc = member.config()
        text = (_describe_typed(mc, member.metrics()) if mc.get("model") in TYPED_MODELS
                else _describe(mc, member.summary()))
        lines.append(f"  - `{r}`: {text}.")
    return lines


def _corrections(man: Manifest) -> list[str]:
    """The manifest's input corrections, which every runner applies before the model."""
    fixes = ([f"a dark dermoscope ring or dark corners filled with the image's median colour "
              f"(`border: {man.border}`, edge.preprocess.fill_dark_border; the runs were trained "
              "without it)"] if man.border not in ("", "none") else [])
    fixes += ([f"colour constancy `{man.color_constancy}`"]
              if man.color_constancy not in ("", "none") else [])
    return [f"- Before the model, every runner applies: {'; '.join(fixes)}."] if fixes else []


def _model_lines(cfg: dict, summ: dict, man: Manifest, met: dict | None = None) -> list[str]:
    extra = (f", output {man.modality_index}: P({man.modalities[1]} photo), which picks the "
             "threshold" if man.modality_index >= 0 and len(man.modalities) > 1 else "")
    extra += (f", output {man.guard.index}: the not-a-lesion guard's score"
              if man.guard is not None else "")
    types = (f", outputs 1-{len(man.classes)}: P(type) for {', '.join(man.classes)}"
             if man.classes else "")
    io = (f"input {man.input_height}x{man.input_width} RGB, raw pixels 0..255 (the model scales "
          f"them); one output vector of {man.output_size}: output 0 = P(malignant){types}{extra}")
    if cfg["model"] in TYPED_MODELS:
        return _typed_lines(cfg, met or {}, io)
    if cfg["model"] != "ensemble":
        return [f"- {_describe(cfg, summ)} on {summ['machine']}; best epoch chosen on validation "
                f"AUC.", f"- {io}."]
    lines = [f"- Ensemble of {len(cfg['members'])} runs in one graph (`python train/ensemble.py "
             f"{' '.join(cfg['members'])}`): the mean of the members' probabilities, "
             f"{summ['params']:,} parameters in all; {io}. A member with a smaller input gets an "
             "exact in-graph copy of the `cv2.INTER_AREA` resize it was trained with.",
             f"- Members (training {summ['train_seconds'] / 60:.1f} min in all on "
             f"{summ['machine']}; times are upper bounds when other jobs shared the CPU):"]
    for m in cfg["members"]:
        member = RunDir(m)
        lines.append(f"  - `{m}`: {_describe(member.config(), member.summary())}.")
    return lines


def _pct(v) -> str:
    """A share as a percentage; '-' for a report written before the value existed."""
    return "-" if v is None else pct(v)


def _bar(int8: dict, keras_acc: float) -> list[str]:
    """The project's bar (``research/targets.py``) against the shipped int8 model."""
    return ["| criterion | shipped int8 | bar | met |", "|---|---|---|---|"] + [
        f"| {c.name} | {down(c.value(int8, keras_acc))} | >= {c.minimum:g} | "
        f"{'yes' if c.met(int8, keras_acc) else '**no**'} |" for c in BAR]


def _intro() -> list[str]:
    return [
        "# Model card: skin-lesion classifier (benign vs. malignant), shipped int8 edge model", "",
        f"> **{DISCLAIMER}** It must not be used to decide whether a lesion needs care; anyone "
        "worried about a lesion should see a clinician.", "",
        "## Intended use",
        "- Teaching and research on on-device medical-image classification: quantization, "
        "latency, calibration and failure modes on a Raspberry Pi-class device.",
        "- Not for screening, triage, diagnosis or any clinical decision, on any population.", ""]


def _several(c: CardInputs) -> bool:
    return len(c.cfg.get("data_sources") or []) > 1


def _data_sources(c: CardInputs) -> list[str]:
    """The training data of a run over several sources (``research/multisource.py``)."""
    met, size = c.met, c.man.input_height
    counts = ", ".join(f"{k} {v:,}" for k, v in (c.source_counts or {}).items())
    val = ", ".join(f"{k} {r['n']}" for k, r in met["val_report"]["per_source"].items())
    phone = PHONE_SOURCE in (c.source_counts or {})
    return [
        "## Training data and its limits",
        f"- {c.man.trained_on}.",
        "- Sources: Kaggle \"Skin Cancer: Malignant vs. Benign\" (ISIC Archive; benign/malignant "
        "only, melanoma vs. nevus in practice), HAM10000 (`ham10000-extra`: one image per lesion, "
        "seven types, four Vienna and Queensland acquisition groups)"
        + (" and PAD-UFES-20 smartphone photos (`pad-ufes-phone`: six types mapped to the nearest "
           "HAM10000 type, several photos per lesion, split by patient)" if phone else "")
        + f", training images per source (validation included): "
        f"{counts}; the model takes them at {size}x{size}. Validation ({met['n_val']} images: {val}) "
        "is drawn per source, label and type, whole lesions (phone photos: whole patients) at a "
        f"time, and no run in the model trained on it. Test: {met['n_test']} Kaggle test images "
        f"after removing {met['n_test_full'] - met['n_test']} that duplicate training images (the "
        "other sources have no test split here; their numbers below are validation).",
        "- The sources are confounded with the label: nearly all melanomas come from the Kaggle "
        "set and nearly all other types from HAM10000, and the two differ in framing and "
        "processing. Read the per-source numbers below, not a pooled AUC.",
        "- Skin-tone distribution is not recorded and is probably mostly light skin; models "
        "trained on such data lose much on dark skin (Daneshjou et al. 2022: AUC 0.72 on "
        "Fitzpatrick I-II vs 0.57 on V-VI). Do not assume this model works on dark skin.",
        *(["- Phone photos come from one Brazilian clinic's smartphones (most copies already "
           "resized to 300x300): other phones, lighting, distances and webcams are untested. A "
           "Pi camera or browser camera frame without a dermoscope is a phone-photo-like input; "
           "the modality output picks its threshold."] if phone else
          ["- Images are dermoscopic (contact/polarised magnifier), not phone or webcam photos; "
           "camera frames are out of distribution."]), ""]


def _data(c: CardInputs) -> list[str]:
    if _several(c):
        return _data_sources(c)
    met, size = c.met, c.man.input_height
    return [
        "## Training data and its limits",
        f"- {c.man.trained_on}.",
        f"- Source: Kaggle \"Skin Cancer: Malignant vs. Benign\" (ISIC Archive), "
        f"{c.n_train_images:,} training images (the model takes them at {size}x{size}); "
        f"validation ({met['n_val']} images) carved from train in blocks of consecutive file numbers; "
        f"test: {met['n_test']} images after removing {met['n_test_full'] - met['n_test']} that "
        "duplicate training images.",
        "- Malignant images that could be matched are melanoma, benign ones melanocytic nevi: "
        "basal/squamous cell carcinoma, keratoses, dermatofibroma and vascular lesions are unseen.",
        "- Skin-tone distribution is not recorded and is probably mostly light skin; models "
        "trained on such data lose much on dark skin (Daneshjou et al. 2022: AUC 0.72 on "
        "Fitzpatrick I-II vs 0.57 on V-VI). Do not assume this model works on dark skin.",
        "- Images are dermoscopic (contact/polarised magnifier), not phone or webcam photos; "
        "camera frames are out of distribution.", ""]


def _threshold(c: CardInputs) -> list[str]:
    man, ship, cal = c.man, c.ship, c.met["calibration"]
    own = ([f"- The float Keras model's threshold, by the same rule on its own validation "
            f"outputs, is {down(man.threshold)}: int8 rounding moves the probabilities a little, so "
            "each exported file gets its own (`export/threshold.py`)."]
           if ship.threshold != man.threshold else [])
    if ship.modality_thresholds:
        head = [f"- One threshold per modality, on the temperature-scaled probability; the "
                f"model's modality output (P({man.modalities[1]}) >= 0.5) picks it: "
                + ", ".join(f"**{m} {down(t)}**" for m, t in ship.modality_thresholds.items())
                + f". Rule: {ship.threshold_rule}. Missing a cancer costs more than a false "
                "alarm, so the thresholds favour sensitivity."]
    else:
        head = [f"- Threshold **{down(ship.threshold)}** on the temperature-scaled probability: "
                f"{ship.threshold_rule}. Missing a melanoma costs more than a false alarm, so the "
                "threshold favours sensitivity."]
    return [
        "## Operating threshold and calibration", *head, *own,
        f"- Temperature T = {down(man.temperature, 3)}, fitted on validation. Test ECE (10 bins, float "
        f"model): {down(cal['ece_raw'])} raw, {down(cal['ece_calibrated'])} scaled; shipped int8 "
        f"model, scaled: {down(c.int8['ece'])}.", ""]


def _metrics(c: CardInputs) -> list[str]:
    int8, keras_t = c.int8, c.met["test"]
    lo, hi = keras_t["ci95"]["roc_auc"]
    return [
        f"## Test metrics at the shipped threshold ({c.met['n_test']} leak-free test images, "
        "bootstrap 95% CI)", "",
        "Shipped int8 TFLite model (`models/model_int8.tflite`, run with the edge runner):", "",
        "| metric | value | 95% CI |", "|---|---|---|", *ci_rows(int8), "",
        f"Confusion: TP {int8['tp']}, FN {int8['fn']}, TN {int8['tn']}, FP {int8['fp']}.", "",
        ("Float Keras model (evaluated when its run folder was written):" if c.cfg["model"] in
         TYPED_MODELS else "Float Keras model (`train/evaluate.py`):"), "",
        "| metric | value | 95% CI |", "|---|---|---|", *ci_rows(keras_t), "",
        f"## Against the project's bar ({SOURCE})", "",
        *_bar(int8, keras_t["accuracy"]), "",
        f"Public results on this split top out near {PUBLIC_BEST[1]:g} accuracy "
        f"({PUBLIC_BEST[0]}). What was tried and what limits it is in docs/experiments.md: every "
        f"run trained on 2 CPU cores within a few hours; the validation split is "
        f"{c.met['n_val']} images, so model selection is noisy (even on {c.met['n_test']} test "
        f"images the float model's AUC CI is {down(lo, 3)}-{down(hi, 3)}) and a threshold set exactly at the target "
        "on validation has no margin for sampling noise: for the first models it landed below "
        "the target on test (docs/experiments.md), hence the lower-bound rule above.", ""]


def _unseen(c: CardInputs) -> list[str]:
    """The shipped file on a source it never trained on: per acquisition group and type."""
    u = c.unseen
    if not u:
        return []
    from research.source_eval import table

    o = u["overall"]
    return [
        f"## Other lesion types and acquisition groups ({u['folder']}, never trained on)", "",
        f"The {u['n']} images of `{u['folder']}` (HAM10000: seven lesion types, four Vienna and "
        "Queensland acquisition groups; without the twins of training images), through the "
        "edge runner at the shipped threshold "
        f"{down(c.ship.threshold)}: ROC AUC {down(o['roc_auc'])}, sensitivity {down(o['sensitivity'])}, "
        f"specificity {down(o['specificity'])}. Each acquisition group stands in for another "
        "clinic's dermoscope (a group with one or two malignant images says little):", "",
        table(u["per_group"], ("n", "n_malignant", "roc_auc", "sensitivity", "specificity")),
        "Per lesion type, the share called malignant (a benign type's false-positive rate, "
        "a malignant type's sensitivity):", "",
        table(u["per_type"], ("n", "malignant", "called_malignant")),
        *_own_point(u),
        "The model never saw keratoses, carcinomas, dermatofibromas or vascular lesions and calls "
        "most keratoses malignant: do not use it on them.", ""]


def _sources(c: CardInputs) -> list[str]:
    """The shipped file on each source's validation images, per source and lesion type."""
    if not c.sources:
        return []
    from research.source_eval import table, types_line

    v = c.sources["val"]
    mvn = v.get("mel_vs_nv_auc")
    no_dx = [types_line(name, by_label) + " The decision is P(malignant) at the threshold, "
             "not the type." for name, by_label in v.get("types_without_dx", {}).items()]
    cols = ("n", "n_malignant", "roc_auc", "sensitivity", "specificity")
    thr = (", ".join(f"{m} {down(t)}" for m, t in c.ship.modality_thresholds.items())
           + " (each image at its predicted modality's)" if c.ship.modality_thresholds
           else down(c.ship.threshold))
    extra = []
    if v.get("per_modality"):
        extra += ["Per modality (the image's true modality; how often the modality output is "
                  "right: " + ", ".join(f"{k} {pct(r)}" for k, r in
                                         v.get("modality_accuracy", {}).items()) + "):", "",
                  table(v["per_modality"], cols)]
    if v.get("per_fitzpatrick"):
        extra += ["Per Fitzpatrick skin type, where the source records it (few images per row "
                  "above type III: read them as anecdotes):", "", table(v["per_fitzpatrick"], cols)]
    lines = [
        "## Per source, modality and lesion type (validation images, shipped int8 file)", "",
        f"Through the edge runner at the shipped threshold {thr} "
        "(`python research/evaluate_sources.py`); the model was not trained on these images:", "",
        table(v["per_source"], cols), *extra,
        "Per lesion type, the share called malignant (a benign type's false-positive rate, a "
        "malignant type's sensitivity) and how often the most likely type is the right one:", "",
        table(v["per_type"], ("n", "malignant", "called_malignant", "type_accuracy")),
        *([f"Melanoma vs. nevus ROC AUC: {down(mvn)}.", ""] if mvn is not None else []),
        *(line for t in no_dx for line in (t, ""))]
    for name in v.get("at_sensitivity_0.90", {}):
        if v["per_type"] and name != Path(c.cfg["data_sources"][0]).name:
            lines += _own_point({**v, "folder": name})
    return lines + ["Keratoses, carcinomas, dermatofibromas and vascular lesions come from "
                    "few images each: treat these shares as rough.", ""]


def _loso(c: CardInputs) -> list[str]:
    """Leave-one-acquisition-group-out, the stand-in for another clinic's images."""
    if not c.loso:
        return []
    groups = sorted({g for res in c.loso.values() for g in res})
    counts = {g: next(res[g] for res in c.loso.values() if g in res) for g in groups}
    head = " | ".join(f"{g} ({counts[g]['n']}, {counts[g]['n_malignant']} malignant)" for g in groups)

    def cell(r: dict | None) -> str:
        if not r or "auc_held_out" not in r:
            return "-"
        val = (f" (validation {down(r['auc_val_held_out'])} held out / {down(r['auc_val_seen'])} seen)"
               if "auc_val_seen" in r else "")
        return f"{down(r['auc_held_out'])}{val}"

    rows = [f"| {label} | " + " | ".join(cell(res.get(g)) for g in groups) + " |"
            for label, res in c.loso.items()]
    return ["## Leave one acquisition group out (a stand-in for another clinic)", "",
            "Each part below was trained again without one HAM10000 acquisition group (device "
            "and practice) and scored on all of that group's images: ROC AUC of P(malignant); "
            "in brackets, the group's validation images scored by that part trained without "
            "the group and by the one trained with it. These are parts of the shipped model "
            "(its head on frozen features), not the whole model. A held-out group also takes lesion types away (most keratoses "
            "and carcinomas of HAM10000 are in rosendahl), and groups with 3 malignant images "
            "give AUCs that mean little.", "",
            "| part, trained without the group | " + head + " |",
            "|---|" + "---|" * len(groups), *rows, ""]


def _shift_section(c: CardInputs) -> list[str]:
    """The shipped file under simulated dermoscope shifts (``research/shift_eval.py``)."""
    if not c.shifts:
        return []
    from research.shifts import table

    return ["## Simulated dermoscope shifts (validation images, shipped int8 file)", "",
            "Each validation image shifted in one fixed way at a time, at the model's input size, "
            "then through the edge runner at the shipped threshold (`python research/shift_eval.py "
            "--run RUN`); in brackets the change from the unshifted image. A shift that moves "
            "specificity but not ROC AUC moves the probabilities across the one threshold, as "
            "another clinic's device can; \"ring\" darkens the corners outside a circle, as many "
            "dermoscopes do.", "", table(c.shifts), ""]


def _own_point(u: dict) -> list[str]:
    """What a threshold set on the unseen source itself would do: is the keratosis problem the
    ranking or the shared threshold? (``research.source_eval.at_sensitivity``; a diagnostic.)"""
    o = u.get("at_sensitivity_0.90", {}).get(u["folder"])
    if not o:
        return []
    types = ", ".join(f"{t} {pct(v)}" for t, v in o["called_malignant"].items())
    return [f"Diagnostic only, not how the runner decides: a threshold set on the "
            f"{u['folder']} images for sensitivity 0.90 ({down(o['threshold'])}) would give specificity "
            f"{down(o['specificity'])} and call malignant: {types}.", ""]


def _guard(c: CardInputs) -> list[str]:
    """The quality gate and the not-a-lesion guard the shipped files carry (from the manifest)."""
    from export.report import guard_markdown

    g = c.man.guard
    lines = guard_markdown(dataclasses.asdict(g) if g else None, dataclasses.asdict(c.man.quality))
    if not lines:
        return []
    return [("## Input checks: " + ln[3:]) if ln.startswith("## ") else ln for ln in lines] + [
        "Such inputs get the status `unusable` or `not_a_lesion` and no benign/malignant label. "
        "The guard knows lesions from the training images and rejects what is far from them; "
        "it is no proof that an accepted image is a lesion of a type the model knows.", ""]


def _quantization(c: CardInputs) -> list[str]:
    exp = c.exp
    L = [f"## Quantization effects (export parity report, same {exp['n_test']} images)", "",
         "int8 formats are converted from a bias-corrected copy of the model "
         "(`export/bias_correction.py`): BatchNorm means absorb the expected int8 weight-rounding "
         "error, so quantized outputs stay centred on the float ones."
         + (f" Activation ranges are calibrated on {n:,} training images." if
            (n := exp.get("calibration_images")) else "")
         + " Each file is scored at its "
         "own threshold (same rule, its own validation outputs). Label agreement with the float "
         "model: both at the float threshold (the format's effect), and the file at its own "
         "threshold (the labels a user of the file sees).", "",
         "| format | size | threshold | accuracy | AUC | sensitivity | specificity | agreement, "
         "float thr | agreement, own thr | max abs dp | status |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in exp["rows"]:
        p = r.get("parity") or {}
        if p:
            L.append(f"| {r['format']} | {r['bytes'] / 1e6:.2f} MB | {down(p['threshold'])} | "
                     f"{down(p['accuracy'])} | {down(p['roc_auc'])} | {down(p['sensitivity'])} | "
                     f"{down(p['specificity'])} | {pct(p['agreement'])} | "
                     f"{_pct(p.get('decision_agreement'))} | {p['max_abs_diff']:.3g} | "
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


def _reproduce(run: RunDir, models: Path, typed: bool = False, export_cmd: str = "",
               loso: bool = False) -> list[str]:
    """The commands behind the card; ``export_cmd``: the one the export report recorded."""
    step = (f"python research/evaluate_sources.py --model {models}/model_int8.tflite --run {run}   # per source"
            if typed else f"python train/evaluate.py --run {run}          # float metrics and threshold")
    made = "export" if typed else "evaluate, export"  # a type run's evaluation is written with it
    return ["## Reproduce", "", "```bash",
            "python export/evaluate_artifact.py   # the int8 table above, from models/ and the dataset only",
            f"make shipped      # train (if needed), {made} to models/, benchmark, write this card",
            step,
            export_cmd or f"python export/convert.py --run {run} --out {models} --formats tflite_int8,onnx_int8",
            f"python benchmarks/latency.py --artifacts {models} --out {run}/bench-models --compare none",
            f"python export/model_card.py --run {run} --models {models} --bench {run}/bench-models/report.json"
            + ("   # + --loso LABEL=FILE ... (the Makefile's shipped target)" if loso else ""),
            "```", ""]


def render(c: CardInputs) -> str:
    """The whole card as Markdown."""
    return "\n".join([*_intro(), *_data(c), "## Model",
                      *_model_lines(c.cfg, c.summ, c.man, c.met), *_corrections(c.man), "",
                      *_threshold(c), *_metrics(c), *_sources(c), *_loso(c), *_shift_section(c),
                      *_unseen(c), *_guard(c),
                      *_quantization(c), *_latency(c),
                      *_reproduce(c.run.path, c.models, c.cfg["model"] in TYPED_MODELS,
                                  c.exp.get("command", ""), bool(c.loso))])
