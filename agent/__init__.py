"""The calicc node agent: applies a compiled node bundle and keeps the node in that state.

agent/cni/ (the CNI plugins and IPAM) is a separate part; everything else here reconciles one
network namespace (the one the agent runs in) to the bundle's node.json.
"""

from __future__ import annotations

from calicc.contract.errors import CaliccError


class AgentError(CaliccError):
    """Something the agent could not do; the message says what and what to check."""
