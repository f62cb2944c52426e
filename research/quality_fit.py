"""Fit the quality gate's thresholds on real lesion images (how ``edge.quality`` got its defaults).

Measures every ``QualityGate`` check (``edge.quality.measure``) on the lesion images at each
model input size and keeps brightness/flatness limits that every lesion passes, plus a
per-size sharpness floor at the ``--quantile`` percentile (0.25%), so >= 99.5% of lesion images
pass the whole gate. Sharpness depends on the input size (a smaller image has more
contrast per pixel), so the floor is a table by size (``edge.quality.MIN_SHARPNESS``, which
``edge.quality.gate_for_size`` reads); this script re-measures it.

Fit it on training images only (never a test split):

Example:
    python research/quality_fit.py ../shared/datasets/skin-lesions/train \
        ../shared/datasets/ham10000-extra ../shared/datasets/pad-ufes-phone

    >>> gate_for_size(128).min_sharpness, gate_for_size(150).min_sharpness
    (14.4, 11.1)
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from core.helpformat import program  # noqa: E402

import argparse
import dataclasses

import numpy as np

from core.digits import pct
from edge.quality import DEFAULT_GATE, MIN_SHARPNESS, SIZES, gate_for_size, measure, verdict  # noqa: F401

def lesion_files(folders: list[Path]) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    return sorted(p for d in folders for p in d.rglob("*") if p.suffix.lower() in exts)


def measure_files(files: list[Path], size: int, tolerance: float) -> np.ndarray:
    """``[n, 4]`` rows of (min side, brightness, flat fraction, sharpness)."""
    from edge.images import load_rgb
    from edge.preprocess import fit_to_input

    rows = []
    for f in files:
        rgb = load_rgb(f)
        v = measure(fit_to_input(rgb, size, size), rgb.shape, tolerance)
        rows.append((v.min_side, v.brightness, v.flat_fraction, v.sharpness))
    return np.array(rows, np.float64).reshape(-1, 4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=program("research/quality_fit.py"), description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders of lesion images (recursive)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--quantile", type=float, default=0.25, help="sharpness floor percentile")
    args = p.parse_args(argv)
    files = lesion_files(args.folders)
    if not files:
        print("error: no .jpg/.png images in the given folders", file=sys.stderr)
        return 2
    print(f"{len(files)} lesion images")
    for size in (int(s) for s in args.sizes.split(",")):
        v = measure_files(files, size, DEFAULT_GATE.flat_tolerance)
        floor = float(np.floor(np.percentile(v[:, 3], args.quantile) * 10) / 10)
        gate = dataclasses.replace(gate_for_size(size), min_sharpness=floor)
        fails = [verdict(type("V", (), dict(min_side=r[0], brightness=r[1], flat_fraction=r[2],
                                            sharpness=r[3]))(), gate) for r in v]
        passed = np.mean([not f for f in fails])
        print(f"size {size}: min_sharpness {floor} (table {MIN_SHARPNESS.get(size)}); "
              f"brightness {v[:, 1].min():.1f}..{v[:, 1].max():.1f}, max flat "
              f"{v[:, 2].max():.3f}; {pct(passed)} pass the gate "
              f"({', '.join(f'{r} {fails.count(r)}' for r in sorted(set(fails) - {''}))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
