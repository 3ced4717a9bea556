"""A BGPPeer's session options onto its `bgp.peers` entry (compiler/model/bgp_peer.py's keys).

keepaliveTime and maxRestartTime are Kubernetes durations ("2m0s"), taken as whole seconds
rounded as confd renders them; ttlSecurity 0 and nextHopMode Auto say what unset says. A value
calicc's model would refuse is a problem at the resource's line, as any bad field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import ip_address
from typing import Any

from calicc.compiler.calico_import.fields import Reader
from calicc.compiler.calico_import.nodes import ImportedNode
from calicc.compiler.calico_import.report import UNMAPPED, Note
from calicc.compiler.model.bgp_peer import RESTART_MAX, TIMER_MAX
from calicc.contract.text import cut

PEER_OPTIONS = frozenset(
    {"keepaliveTime", "maxRestartTime", "ttlSecurity", "localASNumber",
     "numAllowedLocalASNumbers", "sourceAddress", "reachableBy", "nextHopMode"}
)  # fmt: skip
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
MAX_HOPS = MAX_LOCAL_AS = 255


def parse_duration(text: str) -> float | None:
    """Return a Go/Kubernetes duration in seconds, None when it is not one.

    Examples:
        >>> parse_duration("2m0s"), parse_duration("1h30m"), parse_duration("90")
        (120.0, 5400.0, None)
    """
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * UNIT_S[unit] for number, unit in parts)


def seconds(read: Reader, key: str, high: int = RESTART_MAX) -> int | None:
    """Return spec.KEY, a duration, in whole seconds (1 to `high`); None when unset."""
    value = read.value(key)
    if value is None or value == "":
        return None
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None or not 1 <= round(seconds) <= high:
        read.fail(key, f"expected a duration of 1s to {high}s such as 2m0s, got {cut(value)!r}")
        return None
    return round(seconds)


def _count(read: Reader, key: str, high: int) -> int | None:
    value = read.value(key)
    if value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        read.fail(key, f"expected a number from 1 to {high}, got {cut(value)!r}")
        return None
    return value


def _reachable_by(read: Reader) -> str | None:
    value = read.value("reachableBy")
    if value is None or value == "":
        return None
    try:
        return str(ip_address(str(value)))
    except ValueError:
        read.fail("reachableBy", f"expected the gateway's address, got {cut(value)!r}")
        return None


def read_options(read: Reader) -> dict[str, Any]:
    """Return the cluster.yaml keys of the BGPPeer's session options that are set."""
    found: dict[str, Any] = {
        "keepalive_time": seconds(read, "keepaliveTime", TIMER_MAX),
        "max_restart_time": seconds(read, "maxRestartTime", RESTART_MAX),
        "ttl_security": _count(read, "ttlSecurity", MAX_HOPS),
        "local_as_number": read.as_number("localASNumber"),
        "num_allowed_local_as": _count(read, "numAllowedLocalASNumbers", MAX_LOCAL_AS),
        "reachable_by": _reachable_by(read),
    }
    if read.choice("sourceAddress", ("UseNodeIP", "None"), "UseNodeIP") == "None":
        found["source_address"] = "None"
    mode = read.choice("nextHopMode", ("Auto", "Self", "Keep"), "Auto")
    if mode != "Auto":
        found["next_hop_mode"] = mode
    return {key: value for key, value in found.items() if value is not None}


def mesh_restart_notes(settings: dict[str, Any], nodes: Iterable[ImportedNode]) -> list[Note]:
    """Drop the mesh's restart time where reflectors replace calicc's mesh; say so.

    calicc opens no mesh when nodes are route reflectors (Calico meshes the other nodes), so
    Calico's nodeMeshMaxRestartTime has no session to go on there.
    """
    if "node_mesh_max_restart_time" not in settings or not any(n.rr_cluster_id for n in nodes):
        return []
    seconds = settings.pop("node_mesh_max_restart_time")
    why = f"calicc opens no mesh when nodes are route reflectors (was {seconds}s)"
    return [Note(UNMAPPED, "BGPConfiguration", "default", "spec.nodeMeshMaxRestartTime", why)]
