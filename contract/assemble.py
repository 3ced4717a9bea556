"""Assemble a node's complete picture (`NodeManifest`) from its node.json and the cluster files.

The agent does this after checking every file's digest (`built_from_problems` says whether
node.json and the cluster part agree on the cluster settings); the compiler does it for `calicc
validate`, the lab and the tests, so both sides see the same node. The node table's row of the
node must say what node.json says (address, tunnel address, VTEP MAC, blocks): a node.json
newer or older than the node table is refused here, naming what differs.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from calicc.contract.manifest import (
    ClusterIndex,
    ClusterPolicy,
    ClusterSettings,
    Ipset,
    NodeFile,
    NodeManifest,
    PoolEntry,
)
from calicc.contract.names import ALL_HOSTS_SET, ALL_HOSTS_SET_V6, NODE_BUILT_FROM
from calicc.contract.nodes_table import NodeRow, block_order, host_networks, host_networks_v6
from calicc.contract.vxlan import vxlan_plane


class AssemblyError(ValueError):
    """node.json and the cluster files do not describe the same cluster (the fact is named)."""


def built_from_problems(node: NodeFile, index: ClusterIndex) -> list[str]:
    """Return why node.json was not built from this cluster part (empty when it was).

    node.json names the cluster settings it was built from (NODE_BUILT_FROM) with their
    digests; the cluster part's index lists the digests of the files it holds.
    """
    problems = []
    for rel in NODE_BUILT_FROM:
        named = node.files.get(rel)
        held = index.files.get(rel)
        if named is None or held is None:
            where = "node.json" if named is None else "cluster/index.json"
            problems.append(f"{rel}: {where} does not list it")
        elif named.digest is None:
            problems.append(f"{rel}: node.json must name it by digest (it names a source)")
        elif named.digest != held.digest:
            problems.append(
                f"{rel}: node.json was built from {named.digest}, the cluster files hold "
                f"{held.digest}: node.json and the cluster files come from different builds"
            )
    return problems


def own_row(node: NodeFile) -> NodeRow:
    """Return the node table's row of `node`, as its node.json states it."""
    return NodeRow(
        name=node.node.name,
        address=node.node.address,
        tunnel_address=node.tunnel_address,
        vtep_mac=node.vtep_mac,
        blocks=block_order((b.pool, b.cidr) for b in node.blocks),
        interface=node.node.interface,
        pod_mtu=node.pod_mtu,
        address_v6=node.node.address_v6,
        tunnel_address_v6=node.tunnel_address_v6,
        vtep_mac_v6=node.vtep_mac_v6,
    )


def _check(node: NodeFile, settings: ClusterSettings, rows: tuple[NodeRow, ...]) -> NodeRow:
    if settings.cluster != node.cluster:
        raise AssemblyError(
            f"cluster.json is of cluster {settings.cluster!r}, node.json of {node.cluster!r}"
        )
    mine = own_row(node)
    found = [row for row in rows if row.name == mine.name]
    if found != [mine]:
        wide = mine.wide or any(row.wide for row in found)
        what = "has no line" if not found else f"says {found[0].line(wide)!r}"
        raise AssemblyError(
            f"nodes.tsv {what} for node {mine.name}, node.json says {mine.line(wide)!r}: "
            "node.json and the node table come from different builds"
        )
    unknown = sorted(set(node.pools) - {pool.name for pool in settings.pools})
    if unknown:
        raise AssemblyError(f"node.json names pools cluster.json lacks: {', '.join(unknown)}")
    return mine


HostSets = dict[str, tuple[IPv4Network, ...] | tuple[IPv6Network, ...]]
_LAST_HOSTS: list[tuple[tuple[NodeRow, ...], HostSets]] = []  # the last table, its host sets


def _host_sets(rows: tuple[NodeRow, ...]) -> HostSets:
    """Return the node-address sets of both families of a node table.

    The last table's are kept: parse_table returns the same rows for the same text, and
    collapsing 1,000 node addresses costs about 40 ms, once per node `calicc trace` loads.
    """
    if _LAST_HOSTS and _LAST_HOSTS[0][0] is rows:
        return _LAST_HOSTS[0][1]
    hosts: HostSets = {
        ALL_HOSTS_SET: host_networks(r.address for r in rows if r.address is not None),
        ALL_HOSTS_SET_V6: host_networks_v6(r.address_v6 for r in rows if r.address_v6 is not None),
    }
    _LAST_HOSTS[:] = [(rows, hosts)]
    return hosts


def _ipsets(policy: ClusterPolicy, rows: tuple[NodeRow, ...]) -> tuple[Ipset, ...]:
    """Return the policy's ipsets, the node-address sets of both families filled from the table."""
    hosts = _host_sets(rows)
    return tuple(
        s.model_copy(update={"members": tuple(str(net) for net in hosts[s.name])})
        if s.name in hosts
        else s
        for s in policy.ipsets
    )


def assemble(
    node: NodeFile,
    index: ClusterIndex,
    settings: ClusterSettings,
    policy: ClusterPolicy,
    rows: tuple[NodeRow, ...],
) -> NodeManifest:
    """Return the node's complete manifest; its `files` are the node's and the cluster part's.

    A role node.json fills with a shared file keeps its `source`; `NodeManifest.files` lists
    that source too (with its digest, from cluster/index.json).

    Raises:
        AssemblyError: the files disagree about the node or the cluster.
    """
    me = _check(node, settings, rows)
    plane = vxlan_plane(me, node.node.interface, settings.pools, rows)
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
            allowed_uses=p.allowed_uses,
        )
        for p in settings.pools
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
        reservations=settings.reservations,
        tunnel_address=node.tunnel_address,
        tunnel_address_v6=node.tunnel_address_v6,
        route_protocol=node.route_protocol,
        links=node.links,
        routes=tuple(sorted((*node.routes, *plane.routes), key=lambda r: (r.dst.version, r.dst))),
        neighbors=plane.neighbors,
        fdb=plane.fdb,
        ipsets=_ipsets(policy, rows),
        jump_rules=settings.jump_rules,
        policies=policy.policies,
        host=policy.host.for_node(node.node.name) if policy.host is not None else None,
        sysctls=node.sysctls,
        bird=node.bird,
        files={**index.files, **node.files},
        adopted=node.adopted,
    )
