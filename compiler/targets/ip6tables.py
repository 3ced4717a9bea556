"""ip6tables rules (cluster/ip6tables/<encapsulations>.rules): the IPv6 twin of iptables.rules.

A node with an IPv6 address or IPv6 blocks installs one as /etc/calicc/iptables/ip6tables.rules
and the agent applies it with `ip6tables-restore --noflush` exactly as it applies the IPv4 file
(agent/iptables.py, family 6). The same owned-chain discipline: only `cali-` chains of at most 28
characters are declared, no built-in chain is touched, and the hooks into the built-in chains
are the IPv4 file's (cluster.json's `jump_rules`; the agent keeps, in ip6tables, those whose
target chain the file declares).

What it holds, per table, beside the IPv4 file's:
- raw, mangle: the same chains (mark bits cleared, established traffic accepted);
- nat: cali-POSTROUTING -> cali-nat-outgoing, NAT66 as Calico's: MASQUERADE of traffic from an
  IPv6 pool with nat_outgoing (`cali60masq-ipam-pools`) to anything but a pool
  (`cali60all-ipam-pools`) or a node (`cali60all-hosts-net`);
- filter: cali-INPUT (VXLAN over IPv6 from nodes only, when an IPv6 pool of the kind uses it;
  workloads to the host), cali-wl-to-host, cali-FORWARD and the two dispatch chains, as the IPv4
  file has them; then the policy chains (NetworkPolicy and ClusterNetworkPolicy, and the tier
  chains) under the IPv4 names, their rules naming the IPv6 sets (the `cali60` twins of the
  selector and named-port sets, IPv6 ipBlocks' sets): a peer of the other family only (an
  IPv4 ipBlock) allows nothing here, as an IPv6 one allows nothing in the IPv4 file.
The per-pod endpoint chains and dispatch rules are the CNI plugin's and the agent's
(contract/endpoint.py, family 6), as in iptables. Host protection is added by
`host_tables(..., version=6)` (compiler/host/chains.py).
"""

from __future__ import annotations

from calicc.compiler.host.chains import host_tables
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.targets.iptables import (
    NAT_OUTGOING,
    ChainView,
    TableView,
    jump_rules,
    mangle_chains,
    policy_chains,
    raw_chains,
    tunnel_masquerade,
    workload_chains,
)
from calicc.contract.names import (
    ALL_HOSTS_SET_V6,
    ALL_POOLS_SET_V6,
    CHAIN_MAX,
    MASQ_POOLS_SET_V6,
    OWNED_CHAIN_PREFIX,
    V6,
    VXLAN_PORT,
    VXLAN_V6_DEVICE,
)
from calicc.contract.syntax import comment, rule


def has_ipv6(node: NodePlan) -> bool:
    """Return whether `node` takes part in IPv6 (an IPv6 address or IPv6 blocks)."""
    return node.address_v6 is not None or bool(node.blocks_v6)


def node_encaps_v6(node: NodePlan) -> frozenset[str]:
    """Return the encapsulations of the IPv6 pools that serve `node`."""
    return frozenset(p.encap for p in node.pools if p.encap is not None and p.version == V6)


def nat_chains_v6(cluster: ClusterPlan, encaps: frozenset[str]) -> tuple[ChainView, ...]:
    """NAT POSTROUTING: NAT66 for IPv6 pools with nat_outgoing, and tunnel source fix-up."""
    masq = sorted(p.name for p in cluster.pools_v6 if p.nat_outgoing)
    outgoing: tuple[str, ...] = ()
    if masq:
        outgoing = (
            rule(
                NAT_OUTGOING,
                f"-m set --match-set {MASQ_POOLS_SET_V6} src",
                f"-m set ! --match-set {ALL_POOLS_SET_V6} dst",
                f"-m set ! --match-set {ALL_HOSTS_SET_V6} dst",
                comment(f"nat_outgoing pools {', '.join(masq)}: not to pods, not to nodes"),
                "-j MASQUERADE --random-fully",
            ),
        )
    post = (
        rule("cali-POSTROUTING", comment("NAT outgoing"), f"-j {NAT_OUTGOING}"),
        *tunnel_masquerade([VXLAN_V6_DEVICE] if "vxlan" in encaps else []),
    )
    return (
        ChainView("cali-POSTROUTING", "nat POSTROUTING", post),
        ChainView(
            NAT_OUTGOING, "pods leaving the IPv6 pools: NAT66 (fully random ports)", outgoing
        ),
    )


def _vxlan_input(encaps: frozenset[str]) -> tuple[str, ...]:
    if "vxlan" not in encaps:
        return ()
    name, vxlan, local = "cali-INPUT", f"-p udp -m udp --dport {VXLAN_PORT}", "-m addrtype"
    return (
        rule(
            name,
            vxlan,
            f"-m set --match-set {ALL_HOSTS_SET_V6} src",
            f"{local} --dst-type LOCAL",
            comment("VXLAN from cluster nodes"),
            "-j ACCEPT",
        ),
        rule(
            name,
            vxlan,
            f"{local} --dst-type LOCAL",
            comment("VXLAN from anything but a node"),
            "-j DROP",
        ),
    )


def filter_chains_v6(encaps: frozenset[str]) -> tuple[ChainView, ...]:
    """Filter: the IPv4 file's workload chains, with IPv6 VXLAN's INPUT rules."""
    chains = workload_chains(frozenset())  # IPIP has no IPv6; VXLAN's rules name IPv6 sets
    first = chains[0]
    return (ChainView(first.name, first.note, _vxlan_input(encaps) + first.rules), *chains[1:])


def ip6tables_tables(cluster: ClusterPlan, encaps: frozenset[str]) -> tuple[TableView, ...]:
    """Return the four tables of the IPv6 rules of nodes served by IPv6 pools of `encaps`."""
    tables: tuple[TableView, ...] = (
        TableView("raw", raw_chains()),
        TableView("mangle", mangle_chains()),
        TableView("nat", nat_chains_v6(cluster, encaps)),
        TableView("filter", filter_chains_v6(encaps) + policy_chains(cluster, V6)),
    )
    # host protection (compiler/host/chains.py): IPv6 failsafes, host policy and endpoint hooks
    if cluster.host is not None:
        tables = host_tables(cluster.host, encaps, tables, version=V6)
    for table in tables:
        for chain in table.chains:
            if len(chain.name) > CHAIN_MAX or not chain.name.startswith(OWNED_CHAIN_PREFIX):
                raise ValueError(f"chain name {chain.name!r} breaks the cali-/28 rule")
    return tables


def _header(cluster: ClusterPlan, encaps: frozenset[str]) -> list[str]:
    served = " and ".join(sorted(encaps)) if encaps else "unencapsulated"
    return [
        f"# ip6tables rules of cluster {cluster.name}'s IPv6 nodes served by {served} IPv6 pools.",
        "# Generated by calicc: do not edit. Installed as /etc/calicc/iptables/ip6tables.rules.",
        "# Apply with `ip6tables-restore --noflush` after ipsets.restore: only cali- chains are",
        "# declared (and so flushed); no built-in chain is touched. The agent keeps these jumps",
        "# in built-in chains:",
        *(f"#   {j.table} {j.chain} ({j.position}): {j.rule}" for j in jump_rules(False)),
        "# The CNI plugin and the agent add each IPv6 pod's endpoint chains and dispatch rules.",
    ]


def ip6tables_text(cluster: ClusterPlan, encaps: frozenset[str]) -> str:
    """Return the ip6tables-restore input of nodes served by IPv6 pools of `encaps`.

    Written here rather than by a template while the build refuses IPv6 (issue 13): every
    template's bytes are part of every node's render key (compiler/render_keys.py), so a new
    template would change the render keys of every IPv4-only tree. The layout is
    iptables.rules.j2's, so moving it into a template later changes no byte of the file.
    """
    lines = _header(cluster, encaps)
    for table in ip6tables_tables(cluster, encaps):
        lines += [f"*{table.name}", *(f":{c.name} - [0:0]" for c in table.chains)]
        for chain in table.chains:
            lines += [f"# {chain.name}: {chain.note}", *chain.rules]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
