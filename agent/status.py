"""`calicc status`: BGP sessions from BIRD, the node's blocks and their use, endpoints."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.apply import BUNDLE_COPY
from calicc.agent.bird import BirdPaths, node_paths
from calicc.agent.bundle import load_bundle
from calicc.agent.cni.ipam import Allocation
from calicc.agent.cni.node import ipam_store
from calicc.agent.files import under
from calicc.agent.runner import Runner
from calicc.agent.services import status_lines as service_status
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import MANIFEST, STATE_DIR

BGP_FIELDS = 6  # name proto table state since info


def installed_manifest(root: Path) -> NodeManifest:
    """Return the manifest of the bundle the last apply installed under `root`.

    The installed copy is self-contained (node.json and the cluster part under cluster/): it
    is read and assembled like any bundle, so status shows what the agent applies.
    """
    copy = under(root, BUNDLE_COPY)
    if not (copy / MANIFEST).exists():
        raise AgentError(f"{copy / MANIFEST}: no applied bundle here (run `calicc apply` first)")
    return load_bundle(copy).manifest


def bgp_sessions(runner: Runner, root: Path) -> list[tuple[str, str, str]]:
    """Return (name, state, info) of every BGP protocol, from `birdc show protocols`."""
    out = runner.run(["birdc", "-s", str(BirdPaths.under(root).sock), "show", "protocols"])
    sessions = []
    for line in out.splitlines():
        words = line.split(None, BGP_FIELDS - 1)
        if len(words) >= BGP_FIELDS - 1 and words[1] == "BGP":
            info = words[5] if len(words) == BGP_FIELDS else ""
            sessions.append((words[0], words[3], info.strip()))
    return sessions


def block_use(
    blocks: list[IPv4Network | IPv6Network], allocations: list[Allocation]
) -> list[tuple[IPv4Network | IPv6Network, int, int]]:
    """Return (block, used, size) for each block.

    Examples:
        >>> block_use([IPv4Network("10.0.0.0/30")], [])
        [(IPv4Network('10.0.0.0/30'), 0, 4)]
    """
    used = Counter(next((b for b in blocks if a.address in b), None) for a in allocations)
    return [(b, used[b], b.num_addresses) for b in blocks]


def block_note(block: IPv4Network | IPv6Network, manifest: NodeManifest) -> str:
    """Return what `calicc status` adds after a block's use: reserved addresses, tunnel-only.

    A block's size overstates what pods may use when reservations (cluster.json) cover part of
    it, or when its pool does not allow Workload (it holds the node's tunnel address alone).
    """
    owner = next((b.pool for b in manifest.blocks if b.cidr == block), "")
    pool = next((p for p in manifest.pools if p.name == owner), None)
    if pool is not None and not pool.for_pods:
        return f" (pool {owner}: tunnel addresses only, no pods)"
    first, last = int(block.network_address), int(block.broadcast_address)
    reserved = sum(
        max(0, min(last, int(n.broadcast_address)) - max(first, int(n.network_address)) + 1)
        for n in manifest.reservations or ()
        if n.version == block.version
    )
    return f", {reserved} reserved" if reserved else ""


def node_allocations(root: Path, manifest: NodeManifest) -> list[Allocation]:
    """Return the IPAM allocations of the node (the CNI plugin's state)."""
    return ipam_store(under(root, STATE_DIR), manifest).allocations()


def node_line(manifest: NodeManifest) -> str:
    """Return the report's first line: the node, its addresses of each family, its cluster."""
    node = manifest.node
    addresses = ", ".join(str(a) for a in (node.address, node.address_v6) if a is not None)
    return f"node {node.name} ({addresses}), cluster {manifest.cluster}"


def status_lines(root: Path, runner: Runner) -> list[str]:
    """Return the status report of the node under `root`."""
    manifest = installed_manifest(root)
    lines = [node_line(manifest)]
    try:
        sessions = bgp_sessions(runner, root)
        lines += ["BGP sessions:", *(f"  {n:<24} {s:<8} {i}" for n, s, i in sessions)]
    except AgentError as exc:
        lines.append(f"BGP: BIRD not reachable ({exc})")
    allocations = node_allocations(root, manifest)
    lines.append("blocks:")
    for block, used, size in block_use([b.cidr for b in manifest.blocks], allocations):
        lines.append(f"  {block!s:<20} {used}/{size} used{block_note(block, manifest)}")
    lines += service_status(node_paths(root, manifest).conf.parent, manifest)
    lines.append(f"endpoints: {len(allocations)}")
    lines += [f"  {a.address!s:<24} {a.container_id[:12]} {a.ifname}" for a in allocations]
    return lines
