"""Moved to ``core.versions``; this alias keeps older imports working until every caller uses core."""
from core.versions import *  # noqa: F401,F403
