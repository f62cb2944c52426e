"""Which model a command uses when none is named: the one lookup order, written once.

Order (the first that applies): ``--model PATH``; ``$SKINLESION_MODEL`` (a model file, or a
folder holding ``model_int8.tflite``); ``./models/model_int8.tflite`` in the current folder;
the packaged model: ``models/`` beside ``edge/`` (a clone, or a Pi copy of ``edge/``, ``core/``
and ``models/`` side by side), else the copy a wheel installed as the ``skinlesion_models``
package (pyproject maps that name onto ``models/``, so both read the same folder).
The edge runner, the benchmark's ``--artifacts`` default and the browser app's ``--model``
default (``choose_onnx``) all use it. Standard library only (the device copy needs nothing more).

Example:
    >>> choice = choose_model(Path("runs/demo/export/model_int8.onnx"))
    >>> choice.origin, choice.beside("manifest.json").as_posix()
    ('--model', 'runs/demo/export/manifest.json')
"""
from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

ENV = "SKINLESION_MODEL"
MODEL_NAME = "model_int8.tflite"
ONNX_NAME = "model_int8.onnx"  # the browser app's file in the same export folder
PACKAGE = "skinlesion_models"  # the installed name of models/ (pyproject [tool.setuptools])
LOCAL = Path("models") / MODEL_NAME
ORIGIN_ARG, ORIGIN_ENV, ORIGIN_LOCAL, ORIGIN_PACKAGED = (
    "--model", f"${ENV}", "./models", "packaged model")

LOOKUP_HELP = f"""model lookup, the first that applies (the first output line names it and its origin):
  1. --model PATH
  2. ${ENV}: a model file, or a folder holding {MODEL_NAME}
  3. ./{LOCAL.as_posix()} in the current folder
  4. the packaged model: models/ beside edge/ (a clone, or copied edge/ + core/ + models/),
     else the one installed with the package (pip install ".[edge]", or the wheel)"""


class ModelNotFound(Exception):
    """No model by any step of the lookup; the message is one line naming what was tried and the fix."""


@dataclass(frozen=True)
class ModelChoice:
    """The model to use and which lookup step gave it (one of the ``ORIGIN_*`` labels)."""

    path: Path
    origin: str

    def beside(self, name: str) -> Path:
        """Another file of the same export folder (``model_int8.onnx``, ``manifest.json``)."""
        return self.path.parent / name


def packaged_dir() -> Path | None:
    """The shipped model's folder: ``models/`` beside ``edge/``, else the installed package data.

    The sibling comes first so that a clone or a Pi copy runs with its own model even where a
    different version of the package is installed; an installed wheel has no sibling.
    """
    sibling = Path(__file__).resolve().parents[1] / "models"
    if (sibling / MODEL_NAME).is_file():
        return sibling
    try:
        root = importlib.resources.files(PACKAGE)
    except ImportError:  # not installed (a clone or a device copy without models/)
        return None
    return root if isinstance(root, Path) and (root / MODEL_NAME).is_file() else None


def choose_model(model: Path | str | None = None, *, env: Mapping[str, str] | None = None,
                 packaged: Path | None | Literal["auto"] = "auto") -> ModelChoice:
    """The model by the lookup order; ``ModelNotFound`` when no step gives one.

    ``env`` defaults to ``os.environ``; ``packaged="auto"`` means ``packaged_dir()`` (pass a
    folder, or ``None`` for "no packaged model", to check the order without touching the
    installation).
    ``--model`` is taken as given (a missing file is the runtime's one-line error); a set
    ``$SKINLESION_MODEL`` that names nothing is an error, never skipped silently.
    """
    if model is not None:
        return ModelChoice(Path(model), ORIGIN_ARG)
    env = os.environ if env is None else env
    value = env.get(ENV, "").strip()
    if value:
        p = Path(value).expanduser()
        p = p / MODEL_NAME if p.is_dir() else p
        if not p.is_file():
            raise ModelNotFound(f"{ENV}={value}: no model there (give a .tflite/.onnx file or "
                                f"a folder holding {MODEL_NAME}); fix it or unset it")
        return ModelChoice(p, ORIGIN_ENV)
    if LOCAL.is_file():
        return ModelChoice(LOCAL, ORIGIN_LOCAL)
    folder = packaged_dir() if packaged == "auto" else packaged
    if folder is not None and (Path(folder) / MODEL_NAME).is_file():
        return ModelChoice(Path(folder) / MODEL_NAME, ORIGIN_PACKAGED)
    raise ModelNotFound(
        f"no model found (tried --model: not given; ${ENV}: not set; ./{LOCAL.as_posix()}: "
        f"not in {Path.cwd()}; the packaged model: {PACKAGE} not installed and no models/ "
        f"beside edge/): pass --model PATH (an exported .tflite or .onnx with its "
        f"manifest.json), set {ENV}, or export one with python export/convert.py")


def choose_onnx(model: Path | str | None = None, **lookup) -> ModelChoice:
    """The browser app's model: ``--model`` as given, else the lookup's ONNX file.

    The lookup's choice when it is a ``.onnx`` file, else ``model_int8.onnx`` of the same folder
    (the shipped model and every export hold both). ``lookup``: ``choose_model``'s keywords.
    """
    choice = choose_model(model, **lookup)
    if model is not None or choice.path.suffix == ".onnx":
        return choice
    return ModelChoice(choice.beside(ONNX_NAME), choice.origin)
