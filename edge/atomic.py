"""Moved to ``core.atomic``; this alias keeps older imports working until every caller uses core."""
from core.atomic import *  # noqa: F401,F403
