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
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.helpformat import DefaultsHelp, program  # noqa: E402
from core.digits import down  # noqa: E402
from train.config import MODELS, SCHEDULES, TrainConfig  # noqa: E402
from train.data import DATA_ENV, DatasetNotFound  # noqa: E402
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
                   help="seed of the validation split alone (e.g. several --seed runs for one "
                        "ensemble share --split-seed 0); -1: same as --seed")
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
    print(f"\nsaved {result.model_path} (best val AUC {down(result.best_val_auc)}, "
          f"{result.epochs_run} epochs, {result.seconds / 60:.1f} min)")
    print(f"next: python train/evaluate.py --run {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
