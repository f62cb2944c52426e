"""The one argparse help formatter of every CLI here: defaults shown only where they say something.

A default is left out for on/off flags and for empty defaults (None, "", [], False), and where
the help text already states it ("default: ..."); the description keeps its line breaks.

``program(script)`` is every parser's ``prog``: ``python edge/classify.py``, or
``skinlesion classify`` when the ``skinlesion`` command ran it (it sets ``INVOKED_AS``).

Example:
    >>> program("edge/classify.py")
    'python edge/classify.py'
    >>> import argparse
    >>> p = argparse.ArgumentParser(formatter_class=DefaultsHelp)
    >>> _ = p.add_argument("--runs", type=int, default=200, help="timed runs")
    >>> _ = p.add_argument("--quiet", action="store_true", help="less output")
    >>> "(default: 200)" in p.format_help(), "(default: False)" in p.format_help()
    (True, False)
"""
from __future__ import annotations

import argparse


class DefaultsHelp(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        if (action.nargs == 0 or action.default in (None, "", [], False)
                or "default:" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


INVOKED_AS = ""  # set by the skinlesion command (skinlesion/cli.py) to "skinlesion <command>"


def program(script: str) -> str:
    """The name a tool's usage line shows: how it was invoked."""
    return INVOKED_AS or f"python {script}"
