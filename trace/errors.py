"""The trace's own error: a question it cannot answer from the tree it was given (exit 2)."""

from __future__ import annotations

from calicc.contract.errors import CaliccError


class TraceError(CaliccError):
    """Bad arguments, an unknown pod or node, or a tree the trace cannot read."""


class IntentError(CaliccError):
    """A build whose tree violates reachability intents (each named with its trace)."""
