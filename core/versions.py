"""Installed versions of the packages a manifest or benchmark report records.

Example:
    >>> "python" in package_versions(["numpy"])
    True
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{"python": ..., name: version}`` for each installed package in ``names``."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
