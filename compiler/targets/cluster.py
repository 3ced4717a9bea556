"""The cluster part of the rendered tree: what every node shares, rendered once.

- cluster/cluster.json: the pools and the hooks into built-in chains (ClusterSettings);
- cluster/routes.sh: every node's routes script (`routes.sh NODE`: tunnel devices, blackholes,
  the VXLAN routes from the node table);
- cluster/iptables/, cluster/sysctl/, cluster/cni/: the iptables rules, kernel settings and CNI
  conflist of each kind of node (compiler/targets/shared.py);
- cluster/kubeconfig: with kubernetes.server in the cluster file, a kubeconfig of paths
  (compiler/targets/cni.py);
- cluster/nodes.tsv: the node table (contract/nodes_table.py): every node's address, tunnel
  address, VTEP MAC and blocks; the other nodes' VXLAN routes derive from it;
- cluster/policy.json: policy bindings and every ipset's definition (ClusterPolicy);
- cluster/ipsets.restore: every set, for `ipset restore` (compiler/targets/ipset.py);
- cluster/index.json: the digest and install path of each of the above (ClusterIndex).
node.json names cluster.json with its digest (its own files follow from it) and the shared
files it uses by path; those, the node table and the policy change without any node's files
changing, and cluster/index.json holds their digests.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, collapse_addresses

from calicc import __version__
from calicc.compiler.emit import digest, dump_json
from calicc.compiler.model.uses import DEFAULT_USES
from calicc.compiler.model.uses import PoolUse as PoolUseEnum
from calicc.compiler.plan import Block, BlockV6, ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.compiler.targets.ipset import cluster_ipsets
from calicc.compiler.targets.iptables import jump_rules, policy_bindings
from calicc.contract.manifest import (
    ClusterIndex,
    ClusterPolicy,
    ClusterPool,
    ClusterSettings,
    EncapMode,
    Encapsulation,
    FileEntry,
    PoolUse,
)
from calicc.contract.names import (
    ALL_HOSTS_SET,
    ALL_HOSTS_SET_V6,
    ROUTE_PROTOCOL,
    TUNNEL_DEVICE,
    V4,
    VXLAN_DEVICE,
    VXLAN_PORT,
    VXLAN_V6_DEVICE,
    VXLAN_VNI,
    install_path,
)
from calicc.contract.nodes_table import NodeRow, block_order, table_text

HOST_SETS = (ALL_HOSTS_SET, ALL_HOSTS_SET_V6)  # members derived from the node table
ENCAPSULATION: dict[str | None, Encapsulation] = {"ipip": "ipip", "vxlan": "vxlan", None: "none"}


def encap_mode(pool: PoolPlan) -> EncapMode:
    """Return the pool's mode as the contract spells it."""
    mode: EncapMode = pool.encap_mode.value
    return mode


def allowed_uses(pool: PoolPlan) -> tuple[PoolUse, ...] | None:
    """Return the pool's uses as cluster.json lists them: None for Calico's default."""
    if pool.uses == DEFAULT_USES:
        return None
    return tuple(use.value for use in PoolUseEnum if use in pool.uses)


def cluster_pools(cluster: ClusterPlan) -> tuple[ClusterPool, ...]:
    """Return every pool of the cluster (NAT needs them all), sorted by CIDR."""
    return tuple(
        ClusterPool(
            name=pool.name,
            cidr=pool.cidr,
            encapsulation=ENCAPSULATION[pool.encap],
            mode=encap_mode(pool),
            nat_outgoing=pool.nat_outgoing,
            disabled=pool.disabled,
            allowed_uses=allowed_uses(pool),
        )
        for pool in sorted(cluster.pools, key=lambda p: (p.cidr.version, p.cidr))
    )


def reservations(cluster: ClusterPlan) -> tuple[IPv4Network | IPv6Network, ...] | None:
    """Return the reserved networks, merged per family (IPv4 first); None when there are none."""
    nets = [r.cidr for r in cluster.spec.reservations]
    if not nets:
        return None
    v4 = collapse_addresses(n for n in nets if isinstance(n, IPv4Network))
    v6 = collapse_addresses(n for n in nets if isinstance(n, IPv6Network))
    return (*v4, *v6)


def settings_json(cluster: ClusterPlan) -> str:
    """Return cluster.json: the pools and hooks (sorted keys, 2-space indent, final newline)."""
    settings = ClusterSettings(
        calicc_version=__version__,
        cluster=cluster.name,
        pools=cluster_pools(cluster),
        jump_rules=jump_rules(cluster.host is not None),
        reservations=reservations(cluster),
    )
    return dump_json(settings.model_dump(mode="json"))


def policy_json(cluster: ClusterPlan) -> str:
    """Return policy.json: policy bindings and ipsets.

    The node-address sets (IPv4 and IPv6) are listed without members: the agent takes them from
    nodes.tsv (contract/assemble.py), so a node joining changes nodes.tsv and ipsets.restore
    alone.
    """
    ipsets = tuple(
        s.model_copy(update={"members": ()}) if s.name in HOST_SETS else s
        for s in cluster_ipsets(cluster)
    )
    host = cluster.host.cluster_host() if cluster.host is not None else None
    policy = ClusterPolicy(
        cluster=cluster.name, ipsets=ipsets, policies=policy_bindings(cluster), host=host
    )
    return dump_json(policy.model_dump(mode="json", exclude=None if host else {"host"}))


def index_json(cluster: ClusterPlan, files: dict[str, str]) -> str:
    """Return cluster/index.json: the digest and install path of each of `files`."""
    entries = {
        rel: FileEntry(digest=digest(text), install=install_path(rel))
        for rel, text in sorted(files.items())
    }
    return dump_json(ClusterIndex(cluster=cluster.name, files=entries).model_dump(mode="json"))


def node_blocks(node: NodePlan) -> tuple[Block | BlockV6, ...]:
    """Return the node's blocks of both families, IPv4 first (node.json, the node table)."""
    return (*node.blocks, *node.blocks_v6)


def node_row(node: NodePlan) -> NodeRow:
    """Return the node table's row of `node`."""
    return NodeRow(
        name=node.name,
        address=node.address,
        tunnel_address=node.tunnel_address,
        vtep_mac=node.vtep_mac,
        blocks=block_order((b.pool, b.cidr) for b in node_blocks(node)),
        interface=node.interface,
        pod_mtu=node.pod_mtu,
        address_v6=node.address_v6,
        tunnel_address_v6=node.tunnel_address_v6,
        vtep_mac_v6=node.vtep_mac_v6,
    )


@lru_cache(maxsize=2)
def node_rows(cluster: ClusterPlan) -> tuple[NodeRow, ...]:
    """Return the node table, sorted by name (once per build: nodes.tsv and routes.sh read it)."""
    return tuple(node_row(node) for node in cluster.nodes)


def nodes_text(cluster: ClusterPlan) -> str:
    """Return nodes.tsv."""
    return table_text(cluster.name, node_rows(cluster))


def routes_script_view(cluster: ClusterPlan) -> dict[str, object]:
    """Return the template context of cluster/routes.sh (every node's: routes.sh NODE).

    `ipv6` when the node table has its IPv6 columns (a node has an IPv6 address): the script
    then reads them, programs vxlan-v6.calico from the IPv6 VXLAN pools and removes stale IPv6
    routes too. Without IPv6 the script is what it was before IPv6, byte for byte.
    """
    pools = [p for p in cluster_pools(cluster) if not p.disabled]
    v4 = [p for p in pools if p.cidr.version == V4]
    v6 = [p for p in pools if p.cidr.version != V4]
    wide = any(row.wide for row in node_rows(cluster))
    return {
        "cluster": cluster.name,
        "proto": ROUTE_PROTOCOL,
        "vxlan_device": VXLAN_DEVICE,
        "tunnel_device": TUNNEL_DEVICE,
        "vni": VXLAN_VNI,
        "port": VXLAN_PORT,
        "vxlan_pools": [f"{p.name}={p.mode}" for p in v4 if p.encapsulation == "vxlan"],
        "ipip": any(p.encapsulation == "ipip" for p in v4),
        "ipv6": wide,
        "v6_columns": " address6 tunnel6 mac6" if wide else "",  # the variables they are read into
        "vxlan_v6_device": VXLAN_V6_DEVICE,
        "vxlan_v6_pools": [f"{p.name}={p.mode}" for p in v6 if p.encapsulation == "vxlan"],
    }
