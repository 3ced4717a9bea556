"""iptables rules (cluster/iptables/<encapsulations>.rules): iptables-restore input, and hooks.

The rules depend on a node only through the encapsulations of the pools that serve it, so
the compiler writes one file per set of encapsulations (compiler/targets/shared.py), which
every node of that kind installs as /etc/calicc/iptables/iptables.rules.

The file holds only chains calicc owns (`cali-` prefix, at most 28 characters), in the raw,
mangle, nat and filter tables, and is applied with `iptables-restore --noflush`: declaring a
chain flushes that chain only, so other tools' chains and rules (Docker, kube-proxy, firewalld)
are never touched. No rule in the file names a built-in chain; the hooks into the built-in
chains are `jump_rules()`, which the agent keeps exactly once each:

    raw     PREROUTING   -> cali-PREROUTING   top     clear calicc's mark bits
    raw     OUTPUT       -> cali-OUTPUT       top     clear calicc's mark bits
    mangle  PREROUTING   -> cali-PREROUTING   top     accept established traffic (as Calico)
    nat     POSTROUTING  -> cali-POSTROUTING  bottom  NAT outgoing; at the bottom as Calico, so
                                                      kube-proxy's masquerade mark is handled
                                                      by KUBE-POSTROUTING first
    filter  INPUT        -> cali-INPUT        top     tunnel traffic, workload-to-host policy
    filter  FORWARD      -> cali-FORWARD      top     workload policy; accepts what it allowed

Calico's nat PREROUTING/OUTPUT hooks (floating IPs), filter OUTPUT (host endpoints) and the
failsafe chains have no calicc feature behind them and are not rendered.

Workload traffic: cali-FORWARD (and cali-INPUT for traffic to the host) jumps to
cali-from-wl-dispatch / cali-to-wl-dispatch. The rendered dispatch chains hold only their final
"Unknown interface" drop; the per-interface `-g cali-fw-IFACE` / `-g cali-tw-IFACE` rules and the
endpoint chains belong to the CNI plugin (contract/endpoint.py), see there for how they
survive a re-apply of this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from calicc.compiler.host.chains import host_tables
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.policy.cnp import tier_jumps
from calicc.compiler.policy.syntax import cnp_rules, direction_tiers, in_family, policy_rules
from calicc.contract.manifest import JumpRule, PolicyBinding
from calicc.contract.names import (
    ALL_HOSTS_SET,
    ALL_POOLS_SET,
    CHAIN_MAX,
    FROM_DISPATCH,
    MASQ_POOLS_SET,
    OWNED_CHAIN_PREFIX,
    TO_DISPATCH,
    TUNNEL_DEVICE,
    V4,
    VXLAN_DEVICE,
    VXLAN_PORT,
)
from calicc.contract.syntax import ACCEPT_MATCH, CLEAR_MARKS, comment, rule

IPTABLES_TEMPLATE = "iptables/iptables.rules.j2"
WL_TO_HOST = "cali-wl-to-host"
NAT_OUTGOING = "cali-nat-outgoing"
Table = Literal["raw", "mangle", "nat", "filter"]
Position = Literal["top", "bottom"]
HOOKS: tuple[tuple[Table, str, Position], ...] = (
    ("raw", "PREROUTING", "top"),
    ("raw", "OUTPUT", "top"),
    ("mangle", "PREROUTING", "top"),
    ("nat", "POSTROUTING", "bottom"),
    ("filter", "INPUT", "top"),
    ("filter", "FORWARD", "top"),
)


@dataclass(frozen=True)
class ChainView:
    """One chain as printed: a reviewer's note and its rules."""

    name: str
    note: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class TableView:
    """One table block (`*table ... COMMIT`)."""

    name: str
    chains: tuple[ChainView, ...]


def jump_rules(host: bool = False) -> tuple[JumpRule, ...]:
    """Return the jumps from built-in chains into calicc's chains (see the module docstring).

    The same hooks on every node: cluster.json lists them. With host protection (`host`),
    filter OUTPUT -> cali-OUTPUT too (compiler/host/chains.py).
    """
    hooks = HOOKS + ((("filter", "OUTPUT", "top"),) if host else ())
    return tuple(
        JumpRule(
            table=table,
            chain=chain,
            rule=f'-m comment --comment "calicc hook" -j cali-{chain}',
            position=position,
        )
        for table, chain, position in hooks
    )


def policy_bindings(cluster: ClusterPlan) -> tuple[PolicyBinding, ...]:
    """Return policy.json's policies: which pods each policy selects and its chains.

    NetworkPolicies by namespace/name, then ClusterNetworkPolicies in evaluation order.
    """
    namespaced = tuple(
        PolicyBinding(
            namespace=p.namespace,
            name=p.name,
            pod_selector=p.pod_selector,
            ingress_chain=p.ingress.name if p.ingress else None,
            egress_chain=p.egress.name if p.egress else None,
        )
        for p in cluster.policies
    )
    return namespaced + tuple(
        PolicyBinding(
            tier=c.tier,
            priority=c.priority,
            namespace_selector=c.namespace_selector,
            name=c.name,
            pod_selector=c.pod_selector,
            ingress_chain=c.ingress.name if c.ingress else None,
            egress_chain=c.egress.name if c.egress else None,
        )
        for c in cluster.cluster_policies
    )


def node_encaps(node: NodePlan) -> frozenset[str]:
    """Return the encapsulations of the IPv4 pools that serve `node` (what its rules depend on).

    The IPv6 pools' are its ip6tables rules' (compiler/targets/ip6tables.py).
    """
    return frozenset(p.encap for p in node.pools if p.encap is not None and p.version == V4)


def raw_chains() -> tuple[ChainView, ...]:
    """Raw PREROUTING and OUTPUT: every packet starts with calicc's mark bits clear."""
    return tuple(
        ChainView(
            name,
            f"raw {name[5:]}: start with calicc's mark bits clear",
            (rule(name, comment("clear calicc mark bits"), CLEAR_MARKS),),
        )
        for name in ("cali-PREROUTING", "cali-OUTPUT")
    )


def mangle_chains() -> tuple[ChainView, ...]:
    """Mangle PREROUTING: established traffic and accepted packets need no more work."""
    name = "cali-PREROUTING"
    return (
        ChainView(
            name,
            "mangle PREROUTING: as Calico, established traffic skips the rest",
            (
                rule(
                    name,
                    "-m conntrack --ctstate RELATED,ESTABLISHED",
                    comment("established or related"),
                    "-j ACCEPT",
                ),
                rule(name, ACCEPT_MATCH, comment("already accepted by policy"), "-j ACCEPT"),
            ),
        ),
    )


def tunnel_masquerade(devices: Iterable[str]) -> tuple[str, ...]:
    """Rules that give host traffic into a tunnel device the device's address (Calico's)."""
    return tuple(
        rule(
            "cali-POSTROUTING",
            f"-o {dev}",
            "-m addrtype ! --src-type LOCAL --limit-iface-out",
            "-m addrtype --src-type LOCAL",
            comment(f"host traffic into {dev} leaves from the tunnel address"),
            "-j MASQUERADE",
        )
        for dev in sorted(devices)
    )


def nat_chains(cluster: ClusterPlan, encaps: frozenset[str]) -> tuple[ChainView, ...]:
    """NAT POSTROUTING: NAT outgoing for pools with nat_outgoing, and tunnel source fix-up."""
    masq = sorted(p.name for p in cluster.pools_v4 if p.nat_outgoing)
    outgoing: tuple[str, ...] = ()
    if masq:
        outgoing = (
            rule(
                NAT_OUTGOING,
                f"-m set --match-set {MASQ_POOLS_SET} src",
                f"-m set ! --match-set {ALL_POOLS_SET} dst",
                f"-m set ! --match-set {ALL_HOSTS_SET} dst",
                comment(f"nat_outgoing pools {', '.join(masq)}: not to pods, not to nodes"),
                "-j MASQUERADE --random-fully",
            ),
        )
    post = (rule("cali-POSTROUTING", comment("NAT outgoing"), f"-j {NAT_OUTGOING}"),)
    return (
        ChainView(
            "cali-POSTROUTING",
            "nat POSTROUTING",
            post
            + tunnel_masquerade({"ipip": TUNNEL_DEVICE, "vxlan": VXLAN_DEVICE}[e] for e in encaps),
        ),
        ChainView(
            NAT_OUTGOING, "pods leaving the pools: masquerade (fully random ports)", outgoing
        ),
    )


def _input_tunnel_rules(encaps: frozenset[str]) -> tuple[str, ...]:
    name, hosts, local = "cali-INPUT", f"-m set --match-set {ALL_HOSTS_SET} src", "-m addrtype"
    rules: list[str] = []
    if "ipip" in encaps:
        rules += [
            rule(
                name,
                "-p ipencap",
                hosts,
                f"{local} --dst-type LOCAL",
                comment("IPIP from cluster nodes"),
                "-j ACCEPT",
            ),
            rule(name, "-p ipencap", comment("IPIP from anything but a node"), "-j DROP"),
        ]
    if "vxlan" in encaps:
        vxlan = f"-p udp -m udp --dport {VXLAN_PORT}"
        rules += [
            rule(
                name,
                vxlan,
                hosts,
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
        ]
    return tuple(rules)


def workload_chains(encaps: frozenset[str]) -> tuple[ChainView, ...]:
    """Filter INPUT/FORWARD hooks, workload-to-host and the two dispatch chains."""
    unknown = comment("Unknown interface: no endpoint chains for it")
    return (
        ChainView(
            "cali-INPUT",
            "filter INPUT",
            (
                *_input_tunnel_rules(encaps),
                rule(
                    "cali-INPUT",
                    "-i cali+",
                    comment("from a workload to the host"),
                    f"-j {WL_TO_HOST}",
                ),
            ),
        ),
        ChainView(
            WL_TO_HOST,
            "workload to host: its egress policy, then accept",
            (
                rule(
                    WL_TO_HOST,
                    comment("egress policy of the sending workload"),
                    f"-j {FROM_DISPATCH}",
                ),
                rule(WL_TO_HOST, ACCEPT_MATCH, comment("allowed to reach the host"), "-j ACCEPT"),
            ),
        ),
        ChainView(
            "cali-FORWARD",
            "filter FORWARD: workload policy, then accept what it allowed",
            (
                rule("cali-FORWARD", comment("clear calicc mark bits"), CLEAR_MARKS),
                rule(
                    "cali-FORWARD",
                    "-i cali+",
                    comment("from a workload: its egress policy"),
                    f"-j {FROM_DISPATCH}",
                ),
                rule(
                    "cali-FORWARD",
                    "-o cali+",
                    comment("to a workload: its ingress policy"),
                    f"-j {TO_DISPATCH}",
                ),
                rule(
                    "cali-FORWARD",
                    ACCEPT_MATCH,
                    comment("Policy explicitly accepted packet."),
                    "-j ACCEPT",
                ),
            ),
        ),
        ChainView(
            FROM_DISPATCH,
            "the CNI plugin inserts -i caliXXX -g cali-fw-caliXXX above",
            (rule(FROM_DISPATCH, unknown, "-j DROP"),),
        ),
        ChainView(
            TO_DISPATCH,
            "the CNI plugin inserts -o caliXXX -g cali-tw-caliXXX above",
            (rule(TO_DISPATCH, unknown, "-j DROP"),),
        ),
    )


def tier_chains(cluster: ClusterPlan, family: int = V4) -> tuple[ChainView, ...]:
    """Per direction, the ClusterNetworkPolicy tier chains (compiler/policy/syntax.py)."""
    views: list[ChainView] = []
    for direction in ("ingress", "egress"):
        jumps = {
            t: tier_jumps(cluster.cluster_policies, t, direction) for t in ("Admin", "Baseline")
        }
        views += (ChainView(*chain) for chain in direction_tiers(direction, jumps, family))
    return tuple(views)


def policy_chains(cluster: ClusterPlan, family: int = V4) -> tuple[ChainView, ...]:
    """One chain per policy direction (ClusterNetworkPolicies after NetworkPolicies), tiers last.

    `family` 6: the same chains for ip6tables, naming the IPv6 sets (compiler/policy/syntax.py).
    """
    views = []
    for policy in cluster.policies:
        for chain in (policy.ingress, policy.egress):
            if chain is None:
                continue
            allows = sum(1 for b in chain.rules for a in b.allows if in_family(a.peer, family))
            note = f"policy {policy.key} ({policy.origin}) {chain.direction}: " + (
                f"{len(chain.rules)} rules, {allows} allows" if chain.rules else "allows nothing"
            )
            views.append(ChainView(chain.name, note, policy_rules(chain, policy.key, family)))
    for cnp in cluster.cluster_policies:
        for cnp_chain in (cnp.ingress, cnp.egress):
            if cnp_chain is not None:
                note = (
                    f"{cnp.key} ({cnp.origin}) priority {cnp.priority} {cnp_chain.direction}: "
                    f"{len(cnp_chain.rules)} rules"
                )
                rules = cnp_rules(cnp_chain, f"cnp {cnp.name}", family)
                views.append(ChainView(cnp_chain.name, note, rules))
    return tuple(views) + tier_chains(cluster, family)


def iptables_tables(cluster: ClusterPlan, encaps: frozenset[str]) -> tuple[TableView, ...]:
    """Return the four tables of the rules of nodes served by pools of `encaps`."""
    tables: tuple[TableView, ...] = (
        TableView("raw", raw_chains()),
        TableView("mangle", mangle_chains()),
        TableView("nat", nat_chains(cluster, encaps)),
        TableView("filter", workload_chains(encaps) + policy_chains(cluster)),
    )
    if cluster.host is not None:
        tables = host_tables(cluster.host, encaps, tables)
    for table in tables:
        for chain in table.chains:
            if len(chain.name) > CHAIN_MAX or not chain.name.startswith(OWNED_CHAIN_PREFIX):
                raise ValueError(f"chain name {chain.name!r} breaks the cali-/28 rule")
    return tables


def iptables_view(cluster: ClusterPlan, encaps: frozenset[str]) -> dict[str, object]:
    """Return the template context of the rules of nodes served by pools of `encaps`."""
    return {
        "cluster": cluster.name,
        "encaps": sorted(encaps),
        "tables": iptables_tables(cluster, encaps),
        "jumps": jump_rules(cluster.host is not None),
    }
