"""The base of calicc's error hierarchy, shared by the compiler, the agent and the lab."""

from __future__ import annotations


class CaliccError(Exception):
    """Base of every error calicc reports to a user (never a traceback without --debug)."""
