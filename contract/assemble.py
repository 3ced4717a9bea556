"""Assemble a node's complete picture (`NodeManifest`) from its node.json and the cluster files.

The agent does this after checking every file's digest; the compiler does it for `calicc
validate`, the lab and the tests, so both sides see the same node. The node's own row of the
node table must agree with its node.json (address, tunnel address, VTEP MAC, blocks): a table
from another build is refused by digest first, this is the second line of defence.
"""

from __future__ import annotations

from calicc.contract.manifest import (
    ClusterManifest,
    NodeFile,
    NodeManifest,
    PoolEntry,
)
from calicc.contract.nodes_table import NodeRow
from calicc.contract.vxlan import vxlan_plane


class AssemblyError(ValueError):
    """node.json and the cluster files do not describe the same cluster (the fact is named)."""


def own_row(node: NodeFile) -> NodeRow:
    """Return the node table's row of `node`, as its node.json states it."""
    return NodeRow(
        name=node.node.name,
        address=node.node.address,
        tunnel_address=node.tunnel_address,
        vtep_mac=node.vtep_mac,
        blocks=tuple(sorted(((b.pool, b.cidr) for b in node.blocks), key=lambda b: (b[1], b[0]))),
    )


def _check(node: NodeFile, cluster: ClusterManifest, rows: tuple[NodeRow, ...]) -> NodeRow:
    if cluster.cluster != node.cluster:
        raise AssemblyError(
            f"cluster.json is of cluster {cluster.cluster!r}, node.json of {node.cluster!r}"
        )
    mine = own_row(node)
    found = [row for row in rows if row.name == mine.name]
    if found != [mine]:
        what = "has no line" if not found else f"says {found[0].line()!r}"
        raise AssemblyError(f"nodes.tsv {what} for node {mine.name} (node.json: {mine.line()!r})")
    known = {pool.name for pool in cluster.pools}
    unknown = sorted(set(node.pools) - known)
    if unknown:
        raise AssemblyError(f"node.json names pools cluster.json lacks: {', '.join(unknown)}")
    return mine


def assemble(node: NodeFile, cluster: ClusterManifest, rows: tuple[NodeRow, ...]) -> NodeManifest:
    """Return the node's complete manifest.

    Raises:
        AssemblyError: the files disagree about the node or the cluster.
    """
    me = _check(node, cluster, rows)
    plane = vxlan_plane(me, node.node.interface, cluster.pools, rows)
    serving = set(node.pools)
    pools = tuple(
        PoolEntry(
            name=p.name,
            cidr=p.cidr,
            encapsulation=p.encapsulation,
            mode=p.mode,
            nat_outgoing=p.nat_outgoing,
            serves_node=p.name in serving,
            disabled=p.disabled,
        )
        for p in cluster.pools
    )
    return NodeManifest(
        bundle_version=node.bundle_version,
        calicc_version=node.calicc_version,
        cluster=node.cluster,
        node=node.node,
        link_mtu=node.link_mtu,
        pod_mtu=node.pod_mtu,
        pools=pools,
        blocks=node.blocks,
        tunnel_address=node.tunnel_address,
        route_protocol=node.route_protocol,
        links=node.links,
        routes=tuple(sorted((*node.routes, *plane.routes), key=lambda r: r.dst)),
        neighbors=plane.neighbors,
        fdb=plane.fdb,
        ipsets=cluster.ipsets,
        jump_rules=node.jump_rules,
        policies=cluster.policies,
        sysctls=node.sysctls,
        bird=node.bird,
        files=node.files,
    )
