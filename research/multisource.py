"""A small registry of training data sources, and one lesion-disjoint split over all of them.

Two kinds of source folder:
- class folders (the Kaggle ``skin-lesions`` layout: ``train/`` and ``test/`` holding
  ``benign/`` and ``malignant/``); lesion type unknown (``dx == ""``);
- a folder without ``train/``/``test/`` but with a ``MANIFEST.csv`` (columns ``path,label`` and
  optionally ``dx`` or ``dx_ham``, ``lesion_id``, ``patient_id``, ``dataset``, ``twin``,
  ``fitspatrick``, ``modality``), e.g. ``ham10000-extra`` and ``pad-ufes-phone``: training
  images only. ``dx_ham`` (the nearest HAM10000 code) wins over ``dx``; with ``patient_id``,
  a whole patient is one split unit (several photos of several lesions per patient).

Each source has a modality (``MODALITIES``): a ``modality`` column, else ``phone`` for the
known phone-photo sources (``PHONE_SOURCES``), else ``dermoscopic``.

The first source given is the *primary* one: its ``test/`` split is the never-trained-on
headline test. Validation is drawn per source and label (per ``dx`` where known), whole
lesions at a time, and an image whose ``twin`` names a file of another source goes to the
side that file went to.

Example:
    >>> items = [Item(Path(f"{i}.jpg"), i % 2, source="a", lesion=str(i)) for i in range(40)]
    >>> train, val = split_items(items, 0.25, seed=0)
    >>> len(train), len(val), {i.label for i in val}
    (30, 10, {0, 1})
"""
from __future__ import annotations

import csv
import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from train.data import CLASSES, list_samples, resolve_data_dir, split_train_val

MANIFEST_CSV = "MANIFEST.csv"
HAM_NAME = "ham10000-extra"
PHONE_NAME = "pad-ufes-phone"
EXTRA_SOURCES = (HAM_NAME, PHONE_NAME)  # joined to the primary set by default, when present
MODALITIES = ("dermoscopic", "phone")  # the model's modality output is P(MODALITIES[1])
PHONE_SOURCES = (PHONE_NAME,)
# validation share per source where it differs from the run's ``val_fraction``: the phone set's
# 443 photos of 349 patients give ~40 validation patients at 0.15, too few for a per-source AUC
SOURCE_VAL_FRACTIONS = {PHONE_NAME: 0.25}
# HAM10000 lesion types: the order of the model's type outputs
DX_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
DX_NAMES = {"akiec": "actinic keratosis / Bowen's disease", "bcc": "basal cell carcinoma",
            "bkl": "benign keratosis", "df": "dermatofibroma", "mel": "melanoma",
            "nv": "melanocytic nevus", "vasc": "vascular lesion"}
MALIGNANT_DX = ("akiec", "bcc", "mel")


@dataclass(frozen=True)
class Item:
    """One image of one source. ``label`` indexes ``CLASSES``; ``dx`` is ``""`` when unknown."""

    path: Path
    label: int
    dx: str = ""
    source: str = ""
    group: str = ""  # acquisition group (HAM10000 ``dataset``), "" if unknown
    lesion: str = ""  # images with the same lesion key always share a split side
    twin: str = ""  # "<source>/<split>/<class>/<file>" of the same lesion in another source
    modality: str = MODALITIES[0]
    fitzpatrick: str = ""  # Fitzpatrick skin type "1".."6" where the source gives it


def default_extra_dirs() -> list[Path]:
    """``ham10000-extra`` and ``pad-ufes-phone`` next to the primary dataset, where present."""
    try:
        parent = resolve_data_dir(None).parent
    except FileNotFoundError:
        return []
    return [parent / n for n in EXTRA_SOURCES if (parent / n / MANIFEST_CSV).is_file()]


def source_modality(name: str) -> str:
    """``phone`` for a known phone-photo source folder name, else ``dermoscopic``.

    >>> source_modality("pad-ufes-phone"), source_modality("skin-lesions")
    ('phone', 'dermoscopic')
    """
    return MODALITIES[1] if name in PHONE_SOURCES else MODALITIES[0]


def load_source(folder: str | Path, split: str = "train", exclude_leaked: bool = True) -> list[Item]:
    """Items of one source folder (a ``MANIFEST.csv`` folder has no ``test`` split)."""
    folder = Path(folder)
    has_splits = any(c.is_dir() and c.name.lower() in ("train", "test") for c in folder.iterdir())
    if (folder / MANIFEST_CSV).is_file() and not has_splits:
        return _manifest_items(folder) if split == "train" else []
    name = folder.resolve().name
    out = []
    for s in list_samples(folder, split, exclude_leaked):
        # lesion key: 8 consecutive file numbers (used when no primary split is given)
        block = f"{CLASSES[s.label]}-{s.number // 8}"
        out.append(Item(s.path, s.label, "", name, "", f"{name}/{block}", "",
                        source_modality(name)))
    return out


def _manifest_items(folder: Path) -> list[Item]:
    name, out = folder.resolve().name, []
    with open(folder / MANIFEST_CSV, newline="") as f:
        for row in csv.DictReader(f):
            label = row["label"].strip().lower()
            if label not in CLASSES:
                raise ValueError(f"{folder / MANIFEST_CSV}: label {row['label']!r} is not one of "
                                 f"{CLASSES}; fix the row for {row.get('path')}")
            twin = row.get("twin", "").strip()
            dx = (row.get("dx_ham") or row.get("dx") or "").strip()
            unit = (f"patient/{row['patient_id']}" if row.get("patient_id")
                    else row.get("lesion_id") or row["path"])
            modality = (row.get("modality") or "").strip() or source_modality(name)
            if modality not in MODALITIES:
                raise ValueError(f"{folder / MANIFEST_CSV}: modality {modality!r} is not one of "
                                 f"{MODALITIES}; fix the row for {row.get('path')}")
            fitz = (row.get("fitspatrick") or row.get("fitzpatrick") or "").strip()
            out.append(Item(folder / row["path"], CLASSES.index(label), dx,
                            name, row.get("dataset", "").strip(), f"{name}/{unit}",
                            twin, modality, fitz.split(".")[0]))
    return sorted(out, key=lambda i: i.path.name)


def split_items(items: list[Item], val_fraction: float = 0.15, seed: int = 0,
                primary_split: tuple[list, list] | None = None,
                source_fractions: dict[str, float] | None = None) -> tuple[list[Item], list[Item]]:
    """Lesion-disjoint validation split, stratified per (source, label, dx).

    ``source_fractions`` overrides ``val_fraction`` for the named sources (a small source
    needs a larger share to give a usable validation AUC); default ``SOURCE_VAL_FRACTIONS``.

    Items of a source drawn with ``split_train_val`` before (``primary_split``: that call's
    train and val ``Sample`` lists) keep their side, so the primary source's validation set
    stays the one earlier runs used. Twins follow the file they name.
    """
    fixed: dict[str, bool] = {}  # path key of a primary file -> in validation
    if primary_split is not None:
        for is_val, part in ((False, primary_split[0]), (True, primary_split[1])):
            for s in part:
                fixed[_path_key(s.path)] = is_val
    side: dict[str, bool] = {}  # lesion key -> in validation
    for it in items:  # a lesion with a twin goes where the twin's file went
        if it.twin and _twin_key(it.twin) in fixed:
            side[it.lesion] = fixed[_twin_key(it.twin)]
    strata: dict[tuple, list[str]] = {}
    for it in items:
        if _path_key(it.path) in fixed or it.lesion in side:
            continue
        group = strata.setdefault((it.source, it.label, it.dx), [])
        if it.lesion not in group and not any(it.lesion in g for g in strata.values()
                                              if g is not group):
            group.append(it.lesion)
    rng = random.Random(seed)
    for key in sorted(strata):
        lesions = sorted(strata[key], key=lambda s: (zlib.crc32(s.encode()), s))
        rng.shuffle(lesions)
        frac = (SOURCE_VAL_FRACTIONS if source_fractions is None
                else source_fractions).get(key[0], val_fraction)
        n_val = math.ceil(len(lesions) * frac) if len(lesions) > 1 else 0
        for i, les in enumerate(lesions):
            side[les] = i < n_val
    train, val = [], []
    for it in items:
        is_val = fixed.get(_path_key(it.path), side.get(it.lesion, False))
        (val if is_val else train).append(it)
    return train, val


def _path_key(path: Path) -> str:
    """``<source folder>/<split>/<class>/<file>`` tail used to match twins across sources."""
    p = Path(path)
    return "/".join(p.parts[-4:]).lower()


def _twin_key(twin: str) -> str:
    # "skin-lesions/train/benign/12.jpg" -> same form as _path_key
    return "/".join(Path(twin).parts[-4:]).lower()


def gather(data: list[str] | None, val_fraction: float = 0.15, seed: int = 0,
           exclude_leaked: bool = True,
           source_fractions: dict[str, float] | None = None) -> dict[str, list]:
    """``{"train", "val", "test"}`` items over every source in ``data`` (first = primary),
    and ``"dirs"``: the source folders as resolved.

    ``data`` empty: the primary dataset (``resolve_data_dir``) plus ``ham10000-extra`` and
    ``pad-ufes-phone`` next to it when present (``default_extra_dirs``).
    """
    dirs = [Path(d) for d in data] if data else [resolve_data_dir(None)] + default_extra_dirs()
    primary = resolve_data_dir(dirs[0])
    prim_split = split_train_val(list_samples(primary, "train"), val_fraction, seed)
    items = [it for d in [primary, *dirs[1:]] for it in load_source(d, "train", exclude_leaked)]
    train, val = split_items(items, val_fraction, seed, primary_split=prim_split,
                             source_fractions=source_fractions)
    test = load_source(primary, "test", exclude_leaked)
    return {"train": train, "val": val, "test": test,
            "dirs": [str(primary)] + [str(Path(d).resolve()) for d in dirs[1:]]}
