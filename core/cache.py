"""The one cache root of the project: ``$SKINLESION_CACHE``, else ``.cache/`` in the repository.

Example:
    >>> import os; os.environ["SKINLESION_CACHE"] = "/tmp/c"
    >>> str(cache_root())
    '/tmp/c'
    >>> del os.environ["SKINLESION_CACHE"]; cache_root().name
    '.cache'
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """Where decoded images, converted weights and cached activations go."""
    return Path(os.environ.get("SKINLESION_CACHE") or ROOT / ".cache")
