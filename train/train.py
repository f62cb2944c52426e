"""Train an image classifier: benign/malignant skin lesions, or any class folders of your own.

Examples:
    python train/train.py --data my_images --model seed_cnn --image-size 64 --out runs/mine
    python train/train.py --model mobilenetv2 --alpha 0.35 --image-size 128 --out runs/mnv2
    python train/train.py --model seed_cnn --image-size 128 --epochs 20 --out runs/seed
    python train/train.py --out runs/mnv2 --resume        # continue after an interruption
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.helpformat import DefaultsHelp, program  # noqa: E402
from core.digits import down  # noqa: E402
from train.config import MODELS, SCHEDULES, TrainConfig  # noqa: E402
from train.data import DATA_ENV, DatasetNotFound  # noqa: E402
from train.description import RunDescription  # noqa: E402
from train.run import RunDir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog=program("train/train.py"), description=__doc__.split("\n")[0],
                                formatter_class=DefaultsHelp)
    p.add_argument("-d", "--data", default="", help="dataset folder: train/<class>/ and "
                   "test/<class>/, flat <class>/ folders (20%% become the test split, seeded), or a "
                   f"MANIFEST.csv with path,label[,split] (default: ${DATA_ENV}, data/skin-lesions, "
                   "then ../shared/datasets/skin-lesions)")
    p.add_argument("--positive", default="", metavar="CLASS",
                   help="the class whose sensitivity the threshold rule protects (two classes: a "
                        "sigmoid model; more: a softmax whose label is CLASS at or above its "
                        "threshold); default: malignant for the skin-lesion sets, else none")
    p.add_argument("--trained-on", default="", metavar="TEXT",
                   help="what the data is, for the manifest and every runner's output (default: "
                        "the first line of the data's README, else its folder and class names)")
    p.add_argument("-m", "--model", choices=MODELS, default=d.model)
    p.add_argument("--alpha", type=float, choices=(0.35, 1.0), default=d.alpha,
                   help="MobileNetV2 width")
    p.add_argument("--weights", default=d.weights,
                   help="mobilenetv2 backbone: imagenet (local file, never downloaded), none, or a .h5 path")
    p.add_argument("-s", "--image-size", type=int, default=d.image_size, help="square input size (32-512; the ImageNet weights were trained at 224)")
    p.add_argument("-e", "--epochs", type=int, default=d.epochs,
                   help="epochs (mobilenetv2: frozen-backbone head epochs)")
    p.add_argument("--fine-tune-epochs", type=int, default=d.fine_tune_epochs,
                   help="mobilenetv2: epochs with the top backbone layers unfrozen")
    p.add_argument("--fine-tune-layers", type=int, default=d.fine_tune_layers)
    p.add_argument("-b", "--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--fine-tune-lr", type=float, default=d.fine_tune_lr)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-class-weight", dest="class_weight", action="store_false")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="plateau schedule: stop after this many epochs without a better val AUC "
                        "(the LR halves after half as many)")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="plateau: halve the LR on a val-AUC plateau and stop early; cosine: decay "
                        "the LR to 1%% of --lr over each phase's epochs, no early stop")
    p.add_argument("--ema", action="store_true",
                   help="validate and keep an exponential moving average of the weights "
                        "(momentum 0.99)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--keep-leaked", dest="exclude_leaked", action="store_false",
                   help="keep the 27 test images that duplicate train images in the headline test "
                        "split of evaluate.py and the export parity check (default: excluded)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="weights, shuffling, augmentation; also the validation split unless "
                        "--split-seed is given")
    p.add_argument("--split-seed", type=int, default=d.split_seed,
                   help="seed of the validation split alone (e.g. several --seed runs compared "
                        "on one validation split share --split-seed 0); -1: same as --seed")
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false")
    p.add_argument("--strategy", choices=("default", "mirrored"), default=d.strategy,
                   help="mirrored: tf.distribute.MirroredStrategy over all GPUs")
    p.add_argument("-o", "--out", default="", help="run folder (default runs/<model>-<size>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-batch progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 32 <= args.image_size <= 512:
        print(f"error: --image-size {args.image_size} is outside 32..512", file=sys.stderr)
        return 2
    out = args.out or f"runs/{args.model}-{args.image_size}"
    run = RunDir(out)
    if args.resume:
        if not run.config_json.is_file():
            print(f"error: {run.config_json} not found; nothing to resume (drop --resume)",
                  file=sys.stderr)
            return 2
        cfg = run.load_config()
    else:
        if run.started():
            print(f"error: {out} already holds a run; use --resume or a new --out", file=sys.stderr)
            return 2
        keys = set(vars(TrainConfig()))
        cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in keys})
        cfg.out = out
    from train.data import DatasetError
    from train.trainer import train

    try:
        result = train(cfg, resume=args.resume, verbose=2 if args.quiet else 1)
    except (DatasetNotFound, DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    describe(cfg, run.summary()).write(run)
    print(f"\nsaved {result.model_path} (best val AUC {down(result.best_val_auc)}, "
          f"{result.epochs_run} epochs, {result.seconds / 60:.1f} min)")
    print(f"next: python train/evaluate.py --run {result.run_dir}")
    return 0


def command(cfg: TrainConfig) -> str:
    """The ``train/train.py`` command that trains ``cfg`` again: the data and run folders and
    every other flag whose value differs from its default.

    >>> command(TrainConfig(data="d", model="seed_cnn", ema=True, out="runs/x"))
    'python train/train.py --data d --model seed_cnn --ema --out runs/x'
    """
    parts = ["python train/train.py"]
    for a in build_parser()._actions:
        if not a.option_strings or a.dest in ("help", "resume", "quiet", "trained_on"):
            continue
        value = getattr(cfg, a.dest, a.default)
        if value == a.default and a.dest not in ("data", "out"):
            continue
        parts += [a.option_strings[-1]] + ([] if a.nargs == 0 else [shlex.quote(str(value))])
    return " ".join(parts)


def describe(cfg: TrainConfig, summary: dict) -> RunDescription:
    """What a finished run is (``RUN/description.json``), from its config and training summary:
    what this trainer knows of any class folders, nothing more."""
    from train.data import LEAKED_TEST_FILES, is_kaggle_skin_lesions
    from train.models import AUGMENTATION

    labels, size = cfg.labels, cfg.image_size
    leaks = cfg.exclude_leaked and is_kaggle_skin_lesions(cfg.data)
    width = f", alpha {cfg.alpha:g}" if cfg.model == "mobilenetv2" else ""
    name = f"`{cfg.model}`" + (f" (ImageNet backbone{width}, weights: {cfg.weights})"
                               if cfg.model in MODELS[1:] else "")
    head = (f"one sigmoid output, P({labels[-1]})" if cfg.head == "sigmoid"
            else f"a softmax over the {len(labels)} classes")
    n_tr, n_va = summary.get("n_train", 0), summary.get("n_val", 0)
    skipped = len(summary.get("skipped_files") or [])
    data = [f"{cfg.trained_on}.",
            f"Classes, in output order: {', '.join(f'`{c}`' for c in labels)}"
            + (f"; positive class `{cfg.positive}`" if cfg.positive else
               "; no positive class: the label is the most likely class") + ".",
            f"Data folder `{cfg.data}`: {n_tr:,} training and {n_va:,} validation images "
            f"(validation: a {cfg.val_fraction:g} share of the training images, drawn with seed "
            f"{cfg.val_seed}); test: the data's test split"
            + (f", without its {len(LEAKED_TEST_FILES)} images that duplicate training images"
               if leaks else "")
            + (f"; {skipped} unreadable file(s) skipped" if skipped else "") + "."]
    phases = ", then ".join(f"{n} {e} epochs at lr {lr:g}" for n, e, lr in cfg.phases())
    training = [f"`python train/train.py`: {phases}, batch {cfg.batch_size}, {cfg.schedule} "
                f"learning-rate schedule{', weight EMA' if cfg.ema else ''}, class weights "
                f"{'on' if cfg.class_weight else 'off'}, label smoothing "
                f"{cfg.label_smoothing:g}, seed {cfg.seed}.",
                f"The epoch with the best validation AUC "
                f"({down(summary.get('best_val_auc', float('nan')))}) kept; "
                f"{summary.get('train_seconds', 0) / 60:.1f} min on {summary.get('machine', '?')}."]
    threshold = (f"Chosen on validation to protect the sensitivity of `{cfg.positive}` "
                 "(train/evaluate.py); export/convert.py chooses each exported file's own by "
                 "the same rule on that file's outputs." if cfg.positive else "")
    limits = ["Only the classes above: any other input still gets one of these labels (a "
              "not-a-lesion guard, in the files that carry one, rejects inputs far from the "
              "training images).",
              "What the data covers (devices, settings, people) is what the data folder says "
              "and no more: check it before using the model anywhere else."]
    title = (" vs. ".join(labels) + " classifier" if len(labels) == 2
             else f"{len(labels)}-class image classifier ({', '.join(labels)})")
    model = f"{name} at {size}x{size}, {summary.get('params', 0):,} parameters; {head}."
    return RunDescription(title, model, data, AUGMENTATION,
                          training, threshold, limits,
                          [command(cfg), f"python train/evaluate.py --run {cfg.out}"])


if __name__ == "__main__":
    sys.exit(main())
