"""Measure the guard and quality gate of exported artifacts through the edge runner's code path.

For each artifact: the share of lesion images that get a label (status ``ok``) per lesion
set, and the share of non-lesion images flagged (``not_a_lesion`` or ``unusable``) per
non-lesion set. Lesion sets: the run's validation split (a several-source run: each source's
validation images, which neither the model nor the guard was fitted on), the leak-free test
split and any extra folders (e.g. ham10000-extra; all their images). Non-lesion sets: generated images (``--seed``, never the
export's own seed 1) and, when scikit-image is installed, its bundled photos (each whole and
in four random crops).

Example:
    python research/guard_eval.py --export runs/guard-demo/export --run runs/guard-demo \
        --extra ../shared/datasets/ham10000-extra --formats tflite_int8,onnx_int8
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import program  # noqa: E402

import argparse
import json

import numpy as np

from core.digits import pct

# photos looked at while choosing the guard's method and k (with sklearn's china/flower)
TUNE_PHOTOS = ("brick", "grass", "gravel", "coins", "moon", "horse")
# photos only checked with (tests/fixtures_guard.py CHECK_PHOTOS plus two fundus images)
CHECK_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "page", "text",
                "hubble_deep_field", "clock", "logo", "cell", "immunohistochemistry", "retina",
                "microaneurysms")


def photo_crops(names: tuple[str, ...], seed: int = 0, crops: int = 4) -> list[np.ndarray]:
    """scikit-image's bundled photos as RGB uint8, whole and in random square crops."""
    import skimage.data

    rng, out = np.random.default_rng(seed), []
    for name in names:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:  # bool or float images: stretch to 0..255
            img = img.astype(np.float64)
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        out.append(np.ascontiguousarray(img))
        h, w = img.shape[:2]
        for _ in range(crops):
            s = int(min(h, w) * rng.uniform(0.3, 0.7))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            out.append(np.ascontiguousarray(img[y:y + s, x:x + s]))
    return out


def lesion_sets(run: Path, extra: list[Path]) -> dict[str, list[Path]]:
    from train.data import list_samples, split_train_val
    from train.run import RunDir

    raw = RunDir(run).config()
    if len(raw.get("data_sources") or []) > 1:
        from research.multisource import gather

        g = gather(raw["data_sources"], float(raw.get("val_fraction", 0.15)),
                   int(raw.get("seed", 0)))
        data = Path(g["dirs"][0])
        sets = {f"validation {name}": [i.path for i in g["val"] if i.source == name]
                for name in dict.fromkeys(i.source for i in g["val"])}
    else:
        cfg = RunDir(run).load_config()
        data = Path(cfg.data)
        _, val = split_train_val(list_samples(data, "train"), cfg.val_fraction, cfg.val_seed)
        sets = {"validation": [s.path for s in val]}
    sets["test (leak-free)"] = [s.path for s in list_samples(data, "test", True)]
    for d in extra:
        sets[d.name] = sorted(p for p in d.rglob("*.jpg"))
    return sets


def rates(clf, images, ok_wanted: bool) -> dict:
    preds = [clf.predict_rgb(img) for img in images]
    statuses = [p.status for p in preds]
    share = float(np.mean([(s == "ok") == ok_wanted for s in statuses])) if preds else None
    return {"n": len(preds), "rate": share,
            **{s: statuses.count(s) for s in ("ok", "not_a_lesion", "unusable")}}


def main(argv: list[str] | None = None) -> int:
    from core.atomic import atomic_write_text
    from edge.classifier import Classifier
    from edge.images import load_rgb
    from export.formats import FORMATS, select_formats
    from export.nonlesions import generate

    p = argparse.ArgumentParser(prog=program("research/guard_eval.py"), description=__doc__.split("\n\n")[0])
    p.add_argument("--export", type=Path, required=True, help="export folder")
    p.add_argument("--run", type=Path, required=True, help="training run (config.json)")
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="extra lesion folder (repeatable)")
    p.add_argument("--formats", default="tflite_int8")
    p.add_argument("--seed", type=int, default=2, help="generated non-lesion seed (not 1)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    sets = lesion_sets(args.run, args.extra)
    lesions = {k: [load_rgb(f) for f in v] for k, v in sets.items()}
    others = {"generated": list(generate(450, 256, args.seed)[0])}
    try:
        others["photos, tuned on"] = photo_crops(TUNE_PHOTOS)
        others["photos, checked only"] = photo_crops(CHECK_PHOTOS)
    except ImportError:
        print("note: scikit-image not installed: no photo set", file=sys.stderr)
    result = {}
    for fmt in select_formats(args.formats):
        clf = Classifier(args.export / FORMATS[fmt.name].filename, fmt.runtime)
        row = {f"pass: {k}": rates(clf, v, True) for k, v in lesions.items()}
        row.update({f"flagged: {k}": rates(clf, v, False) for k, v in others.items()})
        result[fmt.name] = row
        print(fmt.name + ": " + "; ".join(f"{k} {pct(v['rate'])} of {v['n']}"
                                         for k, v in row.items()))
    print(f"\nTrained on: {clf.manifest.trained_on}.\n{clf.manifest.disclaimer}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
