"""BGPConfiguration and BGPPeers onto cluster.yaml's `bgp:`.

The `default` BGPConfiguration gives the AS number, the node-to-node mesh and the listen port
(per-node `node.<name>` configurations have no calicc equivalent and are reported). A BGPPeer
with a `peerIP` is an external peer: every node's (global), a `nodeSelector`'s, or one node's
(`node`, written as a selector on the node's `kubernetes.io/hostname` label). A BGPPeer with a
`peerSelector` peers nodes with each other: calicc does that by itself for in-cluster route
reflectors (every node peers with every node that has a `route_reflector_cluster_id`), so such
a peer is mapped when its peerSelector selects exactly the reflectors, and reported otherwise.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from typing import Any

from calicc.compiler.calico_import.bgp_filters import peer_filters
from calicc.compiler.calico_import.fields import Reader, leftover, selector_or_none, shown
from calicc.compiler.calico_import.nodes import HOSTNAME, ImportedNode
from calicc.compiler.calico_import.peer_options import PEER_OPTIONS, read_options, seconds
from calicc.compiler.calico_import.report import NOTE, UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.selector import SelectorError, parse_selector
from calicc.contract.names import V4
from calicc.contract.text import cut

DEFAULT_AS = 64512
BGP_PORT = 179
PASSWORD = (
    "Calico's secretKeyRef is a Kubernetes Secret; calicc takes {env: NAME} or {file: PATH} on "
    "the nodes: add it to cluster.yaml by hand"
)
CONFIG_MAPPED = frozenset(
    {"asNumber", "nodeToNodeMeshEnabled", "listenPort", "serviceClusterIPs", "serviceExternalIPs",
     "serviceLoadBalancerIPs", "communities", "prefixAdvertisements", "nodeMeshMaxRestartTime",
     "serviceLoadBalancerAggregation"}
)  # fmt: skip
SERVICE_KEYS = {
    "serviceClusterIPs": "service_cluster_ips",
    "serviceExternalIPs": "service_external_ips",
    "serviceLoadBalancerIPs": "service_loadbalancer_ips",
}
CONFIG_REASONS = {
    "nodeMeshPassword": PASSWORD.replace("add it", "add bgp.mesh_password"),
    "logSeverityScreen": "calicc leaves BIRD's logging at its own level",
    "ignoredInterfaces": "calicc's direct protocol skips only its own interfaces",
}
PEER_MAPPED = frozenset(
    {"peerIP", "asNumber", "node", "nodeSelector", "peerSelector", "keepOriginalNextHop",
     "nextHopMode", "password", "filters"} | PEER_OPTIONS
)  # fmt: skip
PEER_REASONS = {
    "password": PASSWORD,
    "failureDetectionMode": "calicc runs no BFD",
    "restartMode": "calicc's sessions use graceful restart, not long-lived graceful restart",
    "birdGatewayMode": "calicc's sessions resolve next hops recursively",
}
PEER_IP = re.compile(r"\[(?P<v6>[0-9a-fA-F:.]+)\]:(?P<v6port>\d+)|(?P<v4>[0-9.]+):(?P<port>\d+)")


def read_config(
    configs: list[Resource], notes: list[Note], problems: list[Problem]
) -> dict[str, Any]:
    """Return `bgp:`'s AS number, mesh and listen port from the `default` BGPConfiguration."""
    bgp: dict[str, Any] = {"as_number": DEFAULT_AS, "node_to_node_mesh": True}
    for res in configs:
        if res.name != "default":
            notes.extend(_per_node(res))
            continue
        read = Reader(res, problems)
        as_number = read.as_number("asNumber")
        bgp["as_number"] = as_number if as_number is not None else DEFAULT_AS
        bgp["node_to_node_mesh"] = read.boolean("nodeToNodeMeshEnabled", default=True)
        port = read.value("listenPort")
        if isinstance(port, int) and port != BGP_PORT:
            bgp["listen_port"] = port
        bgp |= _advertised(read)
        restart = seconds(read, "nodeMeshMaxRestartTime")
        if restart is not None and bgp["node_to_node_mesh"]:
            bgp["node_mesh_max_restart_time"] = restart
        notes.extend(leftover(res, CONFIG_MAPPED, CONFIG_REASONS))
    return bgp


def _advertised(read: Reader) -> dict[str, Any]:
    """Return the Service CIDRs, communities and prefix advertisements, as Calico wrote them."""
    found: dict[str, Any] = {}
    for key, target in SERVICE_KEYS.items():
        blocks = read.value(key)
        if blocks in (None, []):
            continue
        # not a list: passed as it is, for the model to refuse at the resource's line
        found[target] = (
            [b.get("cidr") if isinstance(b, dict) else b for b in blocks]
            if isinstance(blocks, list)
            else blocks
        )
    aggregation = read.value("serviceLoadBalancerAggregation")
    if aggregation not in (None, "Enabled"):  # Calico's default is calicc's
        found["service_loadbalancer_aggregation"] = aggregation
    communities = read.value("communities")
    if communities:
        found["communities"] = communities
    prefixes = read.value("prefixAdvertisements")
    if prefixes:
        found["prefix_advertisements"] = prefixes
    return found


def service_ranges(configs: list[Resource]) -> dict[str, str]:
    """Return the Service ranges of the `default` BGPConfiguration, by cluster.yaml key.

    The cluster IP range is also service_cluster_ip_range (the range calicc keeps pools out
    of); read_config writes the advertised CIDRs themselves (service_cluster_ips).
    """
    found: dict[str, str] = {}
    for res in configs:
        blocks = res.spec.get("serviceClusterIPs") if res.name == "default" else None
        for block in blocks if isinstance(blocks, list) else []:
            cidr = block.get("cidr") if isinstance(block, dict) else None
            try:
                net = ip_network(str(cidr))
            except ValueError:
                continue
            key = "service_cluster_ip_range" + ("" if net.version == V4 else "_v6")
            found.setdefault(key, str(net))
    return found


def _per_node(res: Resource) -> list[Note]:
    why = "calicc has no per-node BGP configuration"
    return [
        Note(UNMAPPED, res.kind, res.name, f"spec.{key}", f"{why} (was {shown(value)})")
        for key, value in sorted(res.spec.items())
        if value not in (None, "", [], {})
    ]


def _peer_ip(read: Reader) -> tuple[str, int | None] | None:
    text = read.value("peerIP")
    if not isinstance(text, str):
        read.fail("peerIP", "missing: an external peer needs peerIP (or peerSelector)")
        return None
    match = PEER_IP.fullmatch(text)
    address, port = text, None
    if match is not None:
        address = match["v6"] or match["v4"]
        port = int(match["v6port"] or match["port"])
    try:
        return str(ip_address(address)), port
    except ValueError:
        read.fail("peerIP", f"expected an address, ip:port or [v6]:port, got {cut(text)!r}")
        return None


def _scope(res: Resource, nodes: dict[str, ImportedNode], notes: list[Note]) -> str | bool | None:
    """Return the peer's node selector, None for every node, or False when unmappable."""
    node = res.spec.get("node")
    if isinstance(node, str) and node:
        if node not in nodes:
            notes.append(
                Note(UNMAPPED, res.kind, res.name, "spec.node", f"no Node {node}: left out")
            )
            return False
        target = nodes[node]
        if HOSTNAME not in target.labels:  # Kubernetes sets it; a bare Calico Node may lack it
            target.labels[HOSTNAME] = node
            target.entry["labels"] = target.labels
            added = f"{HOSTNAME}: {node} added, the node scope of BGPPeer {res.name}"
            notes.append(Note(NOTE, "Node", node, "metadata.labels", added))
        return f"{HOSTNAME} == '{target.labels[HOSTNAME]}'"
    selector, why = selector_or_none(res.spec.get("nodeSelector"))
    if why:
        notes.append(Note(UNMAPPED, res.kind, res.name, "spec.nodeSelector", f"{why}: left out"))
        return False
    return selector


def _reflector_peer(res: Resource, nodes: dict[str, ImportedNode]) -> Note:
    """Map a peerSelector peer onto calicc's reflectors, or say why it cannot be."""
    text = str(res.spec.get("peerSelector"))
    reflectors = {n.name for n in nodes.values() if n.rr_cluster_id}
    try:
        chosen = parse_selector(text)
    except SelectorError as exc:
        why = f"calicc does not read this selector ({exc}): left out"
        return Note(UNMAPPED, res.kind, res.name, "spec.peerSelector", why)
    selected = {n.name for n in nodes.values() if chosen.matches(n.labels)}
    if reflectors and selected == reflectors:
        why = "selects the route reflectors: calicc peers every node with them by itself"
        return Note(NOTE, res.kind, res.name, "spec.peerSelector", why)
    why = (
        f"selects {', '.join(sorted(selected)) or 'no node'}; calicc peers nodes only with "
        "the in-cluster route reflectors (nodes with routeReflectorClusterID): left out"
    )
    return Note(UNMAPPED, res.kind, res.name, "spec.peerSelector", why)


def read_peer(
    res: Resource,
    nodes: dict[str, ImportedNode],
    notes: list[Note],
    problems: list[Problem],
    filters: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, Any] | None:
    """Return the peer's `bgp.peers` entry, or None (mapped otherwise, or reported).

    `filters`: the names of the BGPFilters imported (a reference to another is dropped, noted).
    """
    if res.spec.get("peerSelector"):
        notes.append(_reflector_peer(res, nodes))
        return None
    read = Reader(res, problems)
    target = _peer_ip(read)
    as_number = read.as_number("asNumber")
    if target is None:
        return None
    if as_number is None:
        if read.value("asNumber") is None:  # a bad one is reported by as_number()
            read.fail("asNumber", "missing: a peer with peerIP needs its AS number")
        return None
    scope = _scope(res, nodes, notes)
    if scope is False:
        return None
    peer: dict[str, Any] = {"peer_ip": target[0], "as_number": as_number}
    if target[1] is not None and target[1] != BGP_PORT:
        peer["port"] = target[1]
    if isinstance(scope, str):
        peer["node_selector"] = scope
    if res.spec.get("keepOriginalNextHop") is True and not res.spec.get("nextHopMode"):
        peer["keep_next_hop"] = True  # Calico ignores it when nextHopMode is set
    peer.update(read_options(read))
    peer |= _filters(res, read, notes, filters)
    notes.extend(leftover(res, PEER_MAPPED - {"password"}, PEER_REASONS))
    return peer


def _filters(res: Resource, read: Reader, notes: list[Note], filters: set[str]) -> dict[str, Any]:
    """Return the peer's `filters:`, the BGPFilters it names that were imported."""
    names = read.value("filters")
    if not isinstance(names, list) or not names:
        return {}
    kept = peer_filters(res, [str(n) for n in names], filters, notes)
    return {"filters": kept} if kept else {}


def topology_notes(nodes: dict[str, ImportedNode], mesh: bool, notes: list[Note]) -> list[Note]:
    """Say where calicc's in-cluster peering differs from Calico's: reflectors replace the mesh.

    calicc peers every node with every node that has a route_reflector_cluster_id, and then
    opens no mesh; Calico does so only through a BGPPeer whose peerSelector picks them.
    """
    reflectors = sorted(n.name for n in nodes.values() if n.rr_cluster_id)
    if not reflectors:
        return []
    peered = any(n.field == "spec.peerSelector" and n.severity == NOTE for n in notes)
    found = []
    if mesh:
        why = "calicc opens no node-to-node mesh when nodes are route reflectors"
        found.append(Note(NOTE, "BGPConfiguration", "default", "spec.nodeToNodeMeshEnabled", why))
    if not peered:
        why = (
            "no BGPPeer's peerSelector picks the route reflectors; calicc peers every node "
            "with them anyway"
        )
        found += [
            Note(NOTE, "Node", name, "spec.bgp.routeReflectorClusterID", why) for name in reflectors
        ]
    return found
