"""``skinlesion <command> [options]``: the toolkit's one command.

Each subcommand is a script's ``main`` (``skinlesion classify`` = ``python edge/classify.py``),
imported only when it runs, so a device with the ``edge`` extra alone runs ``classify`` and
``bench`` without TensorFlow; a subcommand whose extra is missing says which to install.

Example:
    >>> main(["--help"])                                   # doctest: +ELLIPSIS
    usage: skinlesion <command> [options]
    ...
    0
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # holds main(argv) -> int
    script: str  # the same tool run from a checkout
    extra: str  # pip extra(s) it needs
    summary: str


COMMANDS = {
    "train": Command("train.train", "train/train.py", "train",
                     "train a classifier on the skin-lesion sets or your own class folders"),
    "evaluate": Command("train.evaluate", "train/evaluate.py", "train",
                        "score a run on its test split: metrics with CIs, threshold, plots"),
    "export": Command("export.convert", "export/convert.py", "train,export",
                      "a Keras model (a run's or your own) to TFLite/ONNX, each file checked"),
    "classify": Command("edge.classify", "edge/classify.py", "edge",
                        "label images, folders, a camera or a video (no TensorFlow)"),
    "bench": Command("benchmarks.latency", "benchmarks/latency.py", "edge,bench",
                     "latency, size and accuracy per format, runtime and thread count"),
    "app": Command("export.webapp", "export/webapp.py", "edge",
                   "build or serve the offline browser app around an exported model"),
    "card": Command("export.card", "export/card.py", "train,export,bench",
                    "write the model card of a run and its exported files"),
}
EXIT_USAGE = 2


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {n:<{width}}  {c.summary}" for n, c in COMMANDS.items())
    return ("usage: skinlesion <command> [options]\n\n"
            "Train, export and run image classifiers on edge devices. Research and education "
            "tool,\nnot a medical device.\n\ncommands:\n" + rows +
            "\n\n'skinlesion <command> --help' shows a command's options "
            "(the same as python <script> --help).")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; its exit code (2: no or unknown command, or a missing extra)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        print(f"error: unknown command {name!r}; one of: {', '.join(COMMANDS)} "
              "(skinlesion --help)", file=sys.stderr)
        return EXIT_USAGE
    from core import helpformat

    helpformat.INVOKED_AS = f"skinlesion {name}"  # the usage line says how it was run
    try:
        module = importlib.import_module(cmd.module)
    except ImportError as e:
        print(f"error: skinlesion {name} needs {e.name or 'a package'} (pip install "
              f"'skinlesion-edge[{cmd.extra}]')", file=sys.stderr)
        return EXIT_USAGE
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
