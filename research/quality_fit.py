"""Fit the quality gate on the recipe's training images (how ``edge.quality`` got its defaults).

Draws the shipped recipe's split (``research.multisource.gather`` with ``research/train_typed.py``'s
defaults, which the Makefile's SHIP_TRAIN_FLAGS keep: validation share 15%, 25% for
pad-ufes-phone, whole lesions and patients, seed 0) and measures every ``QualityGate`` check
(``edge.quality.measure``) on the **training** images only, at each model input size. It keeps
the brightness/flatness limits of ``edge.quality.DEFAULT_GATE`` (and says how many training
images fall outside them) and fits a per-size sharpness floor at the ``--quantile`` percentile
(0.25%), cut to one decimal. Then it prints the share of each source's validation images and of
the primary source's test split that the fitted gate lets through, next to the gate of the
current table: those images took no part in the fit. Sharpness depends on the input size (a
smaller image has more contrast per pixel), so the floor is a table by size
(``edge.quality.MIN_SHARPNESS``, which ``edge.quality.gate_for_size`` reads). Each image is
decoded once for every size (the three sources' 5,606 images: 37 s on a 2-core machine).

Positional folders instead fit on every image in them, nothing held out (a dataset of your own).

Example:
    python research/quality_fit.py     # skin-lesions, ham10000-extra, pad-ufes-phone
    python research/quality_fit.py --sources ../shared/datasets/skin-lesions \
        ../shared/datasets/ham10000-extra ../shared/datasets/pad-ufes-phone --sizes 160

    >>> gate_for_size(128).min_sharpness, gate_for_size(150).min_sharpness
    (15.0, 11.7)
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import DefaultsHelp, program  # noqa: E402

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

from core.digits import down, pct
from edge.quality import MIN_SHARPNESS  # noqa: F401  (the table this script re-measures)
from edge.quality import DEFAULT_GATE, SIZES, QualityValues, gate_for_size, measure, verdict

VAL_FRACTION, SEED = 0.15, 0  # the shipped recipe's (research/train_typed.py defaults)
TRAIN = "train"


@dataclass(frozen=True)
class Fit:
    """The fitted floors (``{size: floor}``) and every group's measured values."""

    floors: dict[int, float]
    sizes: tuple[int, ...]
    values: dict[str, np.ndarray]  # group -> [n, len(sizes), 4] as ``measure_files``
    unreadable: tuple[Path, ...] = ()


def lesion_files(folders: list[Path]) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    return sorted(p for d in folders for p in d.rglob("*") if p.suffix.lower() in exts)


def split_groups(sources: list[str] | None, val_fraction: float = VAL_FRACTION,
                 seed: int = SEED) -> dict[str, list[Path]]:
    """``train`` (every source's training images), ``val <source>`` per source, ``test <primary>``.

    ``sources`` empty: the recipe's default (skin-lesions, ham10000-extra, pad-ufes-phone)."""
    from research.multisource import gather

    g = gather(sources, val_fraction, seed)
    groups = {TRAIN: [it.path for it in g[TRAIN]]}
    for d in g["dirs"]:
        name = Path(d).name
        groups[f"val {name}"] = [it.path for it in g["val"] if it.source == name]
    groups[f"test {Path(g['dirs'][0]).name}"] = [it.path for it in g["test"]]
    return {k: v for k, v in groups.items() if v}


def measure_files(files: list[Path], sizes: tuple[int, ...],
                  tolerance: float) -> tuple[np.ndarray, list[Path]]:
    """``[n, len(sizes), 4]`` (min side, brightness, flat fraction, sharpness), each file decoded
    once; and the files that could not be read (left out)."""
    from edge.images import ImageError, load_rgb
    from edge.preprocess import fit_to_input

    rows, bad = [], []
    for f in files:
        try:
            rgb = load_rgb(f)
        except ImageError:
            bad.append(f)
            continue
        vs = [measure(fit_to_input(rgb, s, s), rgb.shape, tolerance) for s in sizes]
        rows.append([(v.min_side, v.brightness, v.flat_fraction, v.sharpness) for v in vs])
    return np.array(rows, np.float64).reshape(-1, len(sizes), 4), bad


def fit(groups: dict[str, list[Path]], sizes: tuple[int, ...], quantile: float = 0.25) -> Fit:
    """Measure every group; the sharpness floors come from the ``train`` group alone."""
    values, bad = {}, []
    for name, files in groups.items():
        values[name], b = measure_files(files, sizes, DEFAULT_GATE.flat_tolerance)
        bad += b
    train = values[TRAIN]
    floors = {s: float(down(np.percentile(train[:, i, 3], quantile), 1))
              for i, s in enumerate(sizes)}
    return Fit(floors, tuple(sizes), values, tuple(bad))


def verdicts(rows: np.ndarray, gate) -> list[str]:
    """``edge.quality.verdict`` of each ``[4]`` row ("" = passes)."""
    return [verdict(QualityValues(int(r[0]), float(r[1]), float(r[2]), float(r[3])), gate)
            for r in rows]


def pass_share(rows: np.ndarray, gate) -> float:
    v = verdicts(rows, gate)
    return sum(not r for r in v) / max(1, len(v))


def outside_limits(f: Fit) -> int:
    """Training images that fail the brightness or flatness limits at any fitted size."""
    g = DEFAULT_GATE
    t = f.values[TRAIN]
    bad = ((t[..., 1] < g.min_brightness) | (t[..., 1] > g.max_brightness)
           | (t[..., 2] > g.max_flat_fraction))
    return int(bad.any(axis=1).sum())


def report(f: Fit) -> list[str]:
    """A Markdown table: per size the fitted floor and each group's pass share under the fitted
    gate (``gate_for_size`` over the fitted floors), the current table's in brackets."""
    names = list(f.values)
    lines = ["| size | sharpness floor (now) | " + " | ".join(
        f"{n} ({len(f.values[n]):,})" for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    refused = {}
    for i, s in enumerate(f.sizes):
        new, now = gate_for_size(s, f.floors), gate_for_size(s)
        cells = [f"{pct(pass_share(f.values[n][:, i], new))} "
                 f"({pct(pass_share(f.values[n][:, i], now))})" for n in names]
        lines.append(f"| {s} | {new.min_sharpness} ({now.min_sharpness}) | "
                     + " | ".join(cells) + " |")
        refused[s] = Counter(f"{n} {r}" for n in names[1:]
                             for r in verdicts(f.values[n][:, i], new) if r)
    t, g = f.values[TRAIN], DEFAULT_GATE
    lines += ["", f"training images: brightness {down(t[..., 1].min(), 1)}.."
              f"{down(t[..., 1].max(), 1)}, flat share <= {down(t[..., 2].max(), 3)} over every "
              f"size; outside the limits {g.min_brightness:g}..{g.max_brightness:g} and "
              f"{g.max_flat_fraction:g}: {outside_limits(f)}"]
    lines += [f"held-out images the fitted gate refuses at {s} px: "
              + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
              for s, c in refused.items() if c]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=program("research/quality_fit.py"),
                                formatter_class=DefaultsHelp, description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path,
                   help="instead of --sources: fit on every image in these folders (recursive)")
    p.add_argument("--sources", nargs="+", default=None, metavar="DIR",
                   help="source folders, primary first (default: the recipe's three sources)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="model input sizes, px")
    p.add_argument("--quantile", type=float, default=0.25, help="sharpness floor percentile")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION, help="as the recipe's")
    p.add_argument("--seed", type=int, default=SEED, help=f"as the recipe's (default: {SEED})")
    args = p.parse_args(argv)
    if args.folders and args.sources:
        p.error("give folders or --sources, not both")
    groups = ({TRAIN: lesion_files(args.folders)} if args.folders
              else split_groups(args.sources, args.val_fraction, args.seed))
    if not groups.get(TRAIN):
        print("error: no training images (.jpg/.png) in the given folders", file=sys.stderr)
        return 2
    print("images: " + ", ".join(f"{k} {len(v):,}" for k, v in groups.items()))
    f = fit(groups, tuple(int(s) for s in args.sizes.split(",")), args.quantile)
    if f.unreadable:
        print(f"left out {len(f.unreadable)} unreadable: "
              + ", ".join(map(str, f.unreadable[:5])))
    print("\n".join(report(f)))
    print(f"\nMIN_SHARPNESS = {f.floors}  # fitted; edge/quality.py holds the table "
          f"(then: python -m pytest -q tests/test_edge_quality.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
