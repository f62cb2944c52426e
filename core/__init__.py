"""What every stage shares (train, export, edge, benchmarks): numpy and the standard library only.

``atomic`` (atomic file writes, sha256), ``helpformat`` (the argparse help formatter),
``versions`` (installed package versions), ``metrics`` (binary-classification metrics in plain
numpy), ``digits`` (how reports print a score: cut, never rounded up), plus the disclaimer every
output carries and the one exception-to-one-line helper.
The edge runner needs this folder beside ``edge/`` (copy both to the device).

Example:
    >>> first_line(ValueError("bad header\\n  at byte 12"))
    'bad header'
    >>> "not a medical device" in DISCLAIMER
    True
"""
from __future__ import annotations

DISCLAIMER = (
    "Research/education tool, not a medical device: it does not diagnose; see a clinician."
)
# Exit codes of every tool: done; some inputs bad or a check failed (the rest done); usage or
# input error (nothing done); interrupted (Ctrl-C; what was done is kept)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def first_line(e: BaseException, limit: int = 200, with_type: bool = False) -> str:
    """The first non-empty line of ``str(e)`` (at most ``limit`` characters), else its type name.

    Library errors (OpenCV, runtimes, TensorFlow) often span many lines; messages here are one.
    ``with_type`` prefixes the type name (for a failed row whose cause may be any exception).

    >>> first_line(RuntimeError(""))
    'RuntimeError'
    >>> first_line(KeyError("x"), with_type=True)
    "KeyError: 'x'"
    """
    for line in str(e).strip().splitlines():
        if line.strip():
            text = line.strip()[:limit]
            return f"{type(e).__name__}: {text}" if with_type else text
    return type(e).__name__
