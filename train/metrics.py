"""Moved to ``core.metrics``; this alias keeps older imports working until every caller uses core."""
from core.metrics import *  # noqa: F401,F403
