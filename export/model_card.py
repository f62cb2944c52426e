"""Write ``MODEL_CARD.md`` for the shipped model from measured files only (no typed numbers).

Reads the training run, the shipped export folder, optionally a latency report
(``benchmarks/latency.py`` ``report.json``), counts the dataset's training images, and re-runs
the shipped int8 artifact on the leak-free test split with the edge runner to get its metrics
with bootstrap 95% CIs. The card itself is rendered by ``export/card.py``.

Example:
    python export/model_card.py --run runs/mix-two-net --models models \
        --bench runs/mix-two-net/bench-models/report.json --loso head=runs/loso-none/loso.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.atomic import atomic_write_text  # noqa: E402
from core.helpformat import DefaultsHelp, program  # noqa: E402
from export.artifact_metrics import artifact_metrics  # noqa: E402
from export.card import CardInputs, render  # noqa: E402
from train.data import DatasetNotFound, list_samples, resolve_data_dir  # noqa: E402
from train.run import RunDir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=program("export/model_card.py"), description=__doc__.split("\n")[0], formatter_class=DefaultsHelp)
    ap.add_argument("--run", required=True, type=Path, help="training run folder")
    ap.add_argument("--models", default=Path("models"), type=Path, help="shipped export folder")
    ap.add_argument("--bench", type=Path, default=None, help="benchmarks/latency.py report.json")
    ap.add_argument("--data", default=None, help="dataset folder (default: the usual places)")
    ap.add_argument("--out", default=Path("MODEL_CARD.md"), type=Path)
    ap.add_argument("--unseen", default="auto",
                    help="a MANIFEST.csv source folder the run never trained on, measured per "
                         "acquisition group and lesion type; auto: ham10000-extra beside the "
                         "dataset; none: skip")
    ap.add_argument("--loso", nargs="*", default=[], metavar="LABEL=FILE[#MEMBER]",
                    help="leave-one-acquisition-group-out results for the card: loso.json of "
                         "research/train_typed.py --loso-only (#MEMBER: one member of a file "
                         "that holds several)")
    ap.add_argument("--no-shifts", action="store_true",
                    help="leave out the simulated dermoscope shifts (research/shift_eval.py)")
    return ap


def _shifts(run: RunDir, models: Path, data_dir: Path) -> list | None:
    """The shipped file on validation images under each simulated dermoscope shift."""
    from research.shifts import SHIFTS, shift_report

    cfg = run.config()
    sources = cfg.get("data_sources") or [str(data_dir)]
    split_seed = int(cfg.get("split_seed", -1))  # TrainConfig.val_seed: the run's validation
    return shift_report(models / "model_int8.tflite", sources, list(SHIFTS),
                        float(cfg.get("val_fraction", 0.15)),
                        split_seed if split_seed >= 0 else int(cfg.get("seed", 0)))


def read_loso(spec: str) -> tuple[str, dict]:
    """``LABEL=FILE[#MEMBER]`` -> (label, {group: {n, n_malignant, auc_held_out, ...}}).

    Raises ``ValueError`` with a one-line reason (bad form, missing file, no LOSO results).
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


def _unseen(run: RunDir, models: Path, data_dir: Path, arg: str) -> dict | None:
    """Another source (default: ``ham10000-extra`` beside the dataset) through the shipped
    file, when it exists and the run did not train on it."""
    from research.source_metrics import unseen_report
    from research.multisource import HAM_NAME, MANIFEST_CSV

    if arg == "none":
        return None
    folder = Path(data_dir).parent / HAM_NAME if arg == "auto" else Path(arg)
    trained = {Path(s).name for s in run.config().get("data_sources", [])}
    if not (folder / MANIFEST_CSV).is_file() or folder.name in trained:
        return None
    return unseen_report(models / "model_int8.tflite", folder)


def _own_sources(run: RunDir, models: Path) -> tuple[dict | None, dict | None]:
    """For a run over several sources: the shipped file on each source's validation images
    (``source_report``) and the training images per source; ``(None, None)`` otherwise."""
    from research.source_metrics import source_report
    from research.multisource import load_source

    cfg = run.config()
    sources = cfg.get("data_sources") or []
    if len(sources) < 2:
        return None, None
    rep = source_report(models / "model_int8.tflite", sources, float(cfg.get("val_fraction", 0.15)),
                        int(cfg.get("seed", 0)), splits=("val",))  # test: artifact_metrics
    return rep, {Path(d).name: len(load_source(d)) for d in sources}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = RunDir(args.run)
    for f in (run.metrics_json, args.models / "manifest.json", args.models / "export_report.json"):
        if not f.is_file():
            print(f"error: {f} not found (train, evaluate and export first)", file=sys.stderr)
            return 2
    try:
        data_dir = resolve_data_dir(args.data)
        loso = dict(read_loso(s) for s in args.loso)
    except (DatasetNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    int8 = artifact_metrics(args.models / "model_int8.tflite", data_dir)
    bench = json.loads(args.bench.read_text()) if args.bench and args.bench.is_file() else None
    card = CardInputs(run, args.models, int8, len(list_samples(data_dir, "train")), bench,
                      _unseen(run, args.models, data_dir, args.unseen),
                      *_own_sources(run, args.models), loso or None,
                      None if args.no_shifts else _shifts(run, args.models, data_dir))
    atomic_write_text(args.out, render(card))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
