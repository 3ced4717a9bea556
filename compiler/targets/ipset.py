"""ipset/ipsets.restore and the ipset list of node.json.

Two kinds of sets:

- static sets, whose members the compiler knows: all pools (`cali40all-ipam-pools`), pools that
  NAT outgoing (`cali40masq-ipam-pools`), node addresses (`cali40all-hosts-net`) and one set per
  NetworkPolicy ipBlock. They are replaced atomically: create the live set if missing
  (`-exist`), fill a temporary set, `swap` it with the live one, destroy the temporary. The live
  set is never flushed, so a rule using it never sees it empty. This works whether or not the
  live set exists yet, and whether or not an earlier run died half-way (the temporary set is
  created with `-exist` and flushed before it is filled).
- runtime sets (pod selectors and named ports of policies), whose members only the node knows;
  with IPv6 pools each has a `family inet6` twin (cali60s:, cali60n:) for the pods' IPv6
  members, and IPv6 ipBlocks have static cali60b: sets.
  The file creates them if missing and never touches their members: the CNI plugin adds a pod's
  IP at ADD and removes it at DEL (`selector_sets_for_pod`, `named_port_members` in
  contract/endpoint.py). Their `selector` in node.json says what belongs in them.

Apply with plain `ipset restore < ipsets.restore`, before iptables.rules (rules name the sets).
Every node holds every set (any pod may land on any node), so the file is written once, in the
cluster part (cluster/ipsets.restore), and cluster.json lists the sets for the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Network, collapse_addresses

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.policy.names import set_name
from calicc.compiler.policy.rules import SetSpec, twin
from calicc.compiler.pools import PoolPlan
from calicc.contract.manifest import Ipset
from calicc.contract.names import (
    ALL_HOSTS_SET,
    ALL_HOSTS_SET_V6,
    ALL_POOLS_SET,
    ALL_POOLS_SET_V6,
    IPSET_MAXELEM,
    MASQ_POOLS_SET,
    MASQ_POOLS_SET_V6,
    TEMP_SET_PREFIX,
    TEMP_SET_PREFIX_V6,
    set_family,
)


@lru_cache(maxsize=2)
def static_sets(cluster: ClusterPlan) -> tuple[SetSpec, ...]:
    """Return the cluster's own sets: pools, NAT pools and node addresses.

    Disabled pools stay in the pool sets: pods already holding their addresses still need
    the same NAT decisions. A LoadBalancer pool stays out of the all-pools set, so traffic to
    its addresses is masqueraded like any leaving the pools (calico#12857); like Calico, it is
    in the masquerade set when it has nat_outgoing.
    """
    pools = sorted(cluster.pools_v4, key=lambda p: p.cidr)
    masq = tuple(str(p.cidr) for p in pools if p.nat_outgoing)
    hosts = tuple(str(net) for net in cluster.host_networks)
    return (
        SetSpec(ALL_POOLS_SET, "hash:net", _not_balancers(pools), None, "all pools"),
        SetSpec(MASQ_POOLS_SET, "hash:net", masq, None, "pools with nat_outgoing"),
        SetSpec(ALL_HOSTS_SET, "hash:net", hosts, None, "node addresses (collapsed)"),
        *static_sets_v6(cluster),
    )


def _not_balancers(pools: list[PoolPlan]) -> tuple[str, ...]:
    """Return the CIDRs of the pools that are not LoadBalancer pools (the all-pools sets)."""
    return tuple(str(p.cidr) for p in pools if not p.load_balancer)


def static_sets_v6(cluster: ClusterPlan) -> tuple[SetSpec, ...]:
    """Return the `family inet6` twins of the static sets (none without IPv6 pools).

    The node-address set lists every IPv6 node address as a /128, collapsed; unlike the IPv4
    one, policy.json keeps its members (the node table has no IPv6 column yet).
    """
    pools = sorted(cluster.pools_v6, key=lambda p: p.cidr)
    if not pools:
        return ()
    masq = tuple(str(p.cidr) for p in pools if p.nat_outgoing)
    hosts = collapse_addresses(
        IPv6Network(n.address_v6.ip) for n in cluster.nodes if n.address_v6 is not None
    )
    return (
        SetSpec(ALL_POOLS_SET_V6, "hash:net", _not_balancers(pools), None, "IPv6 pools"),
        SetSpec(MASQ_POOLS_SET_V6, "hash:net", masq, None, "IPv6 pools with nat_outgoing"),
        SetSpec(
            ALL_HOSTS_SET_V6,
            "hash:net",
            tuple(str(n) for n in hosts),
            None,
            "IPv6 node addresses (collapsed)",
        ),
    )


@lru_cache(maxsize=2)
def policy_sets(cluster: ClusterPlan) -> tuple[SetSpec, ...]:
    """Return every ipset the cluster's policies use, once each, sorted by name.

    The `family inet6` ones (the IPv6 twins of selector and named-port sets, IPv6 ipBlocks and
    networks: compiler/policy/rules.py) only when the cluster has IPv6 pools: an IPv4-only
    cluster has no IPv6 rules to name them.
    """
    owned = [p.sets for p in cluster.policies] + [
        (*c.sets, c.subject) for c in cluster.cluster_policies
    ]
    sets = {s.name: s for policy_sets in owned for s in policy_sets}
    if cluster.pools_v6:
        runtime = [twin(s) for s in sets.values() if s.selector is not None]
        sets |= {s.name: s for s in runtime}
    else:
        sets = {name: s for name, s in sets.items() if set_family(name) != "inet6"}
    return tuple(sets[name] for name in sorted(sets))


def all_sets(cluster: ClusterPlan) -> tuple[SetSpec, ...]:
    """Return the static sets followed by the policy sets."""
    host = cluster.host.sets if cluster.host is not None else ()  # compiler/host/plan.py
    return static_sets(cluster) + policy_sets(cluster) + host


@lru_cache(maxsize=2)
def cluster_ipsets(cluster: ClusterPlan) -> tuple[Ipset, ...]:
    """Return cluster.json's ipsets: every set, sorted by name."""
    return tuple(
        Ipset(
            name=s.name,
            type=s.type,
            members=s.members,
            selector=s.selector,
            comment=s.comment,
        )
        for s in sorted(all_sets(cluster), key=lambda s: s.name)
    )


@dataclass(frozen=True)
class SetView:
    """One set as printed: the create options and, for static sets, its temporary twin."""

    name: str
    create: str
    temp: str | None
    temp_create: str | None
    members: tuple[str, ...]
    comment: str


def temp_name(live: str) -> str:
    """Return the temporary set used to replace `live` (stable, 31 characters at most).

    Of the live set's family: an IPv6 set's twin starts with cali6t (a name says its family).
    """
    inet6 = set_family(live) == "inet6"
    return set_name(TEMP_SET_PREFIX_V6 if inet6 else TEMP_SET_PREFIX, live)


def _set_view(spec: SetSpec) -> SetView:
    options = f"{spec.type} family {set_family(spec.name)} maxelem {IPSET_MAXELEM}"
    runtime = spec.selector is not None
    temp = None if runtime else temp_name(spec.name)
    return SetView(
        name=spec.name,
        create=f"create {spec.name} {options} -exist",
        temp=temp,
        temp_create=None if temp is None else f"create {temp} {options} -exist",
        members=spec.members,
        comment=spec.comment + (" (members added at runtime)" if runtime else ""),
    )


IPSETS_TEMPLATE = "ipset/ipsets.restore.j2"


def ipsets_view(cluster: ClusterPlan) -> dict[str, object]:
    """Return the template context of cluster/ipsets.restore."""
    return {"cluster": cluster.name, "sets": [_set_view(s) for s in all_sets(cluster)]}
