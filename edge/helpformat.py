"""Moved to ``core.helpformat``; this alias keeps older imports working until every caller uses core."""
from core.helpformat import *  # noqa: F401,F403
