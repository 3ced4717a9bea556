"""Service IP advertisement (Calico's BGPConfiguration serviceClusterIPs and friends), per node.

cluster.yaml `bgp.service_cluster_ips`, `service_external_ips` and `service_loadbalancer_ips`
hold CIDRs of either family. As in Calico:

- every node holds each CIDR as a blackhole in BIRD's table only (a static protocol; the kernel
  export filter takes only BGP routes, so no node installs one) and advertises it, except the
  single addresses (/32, /128) of the external and LoadBalancer lists: those are advertised per
  Service, like the Local Services' /32s; with `service_loadbalancer_aggregation: Disabled`
  the LoadBalancer CIDRs are not advertised whole either: each LoadBalancer IP in use is
  (Calico's switch for anycast failover: a Service without endpoints is withdrawn);
- the node agent adds, inside the same static protocol, /32s (/128s) of Services with
  externalTrafficPolicy Local from the nodes that hold a ready endpoint (agent/services.py);
- a node labelled `node.kubernetes.io/exclude-from-external-load-balancers: "true"` advertises
  none of them.

Only sessions with external peers (bgp.peers) carry them: in-cluster sessions import pool
routes only, and a node's own advertisement reaches its external peers directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from calicc.compiler.model.spec import Bgp, ClusterSpec
from calicc.contract.names import V4, V6
from calicc.contract.services import (
    EXCLUDE_LABEL,
    SERVICE_INCLUDES,
    SERVICE_PROTOCOL,
    Network,
    ServiceIps,
    is_single,
)

if TYPE_CHECKING:
    from calicc.compiler.plan import NodePlan

Labels = Mapping[str, str] | tuple[tuple[str, str], ...]

SERVICE_KEYS = ("service_cluster_ips", "service_external_ips", "service_loadbalancer_ips")


def service_entries(bgp: Bgp) -> tuple[Network, ...]:
    """Return every configured service CIDR (all three lists), in the order written."""
    return (*bgp.service_cluster_ips, *bgp.service_external_ips, *bgp.service_loadbalancer_ips)


def advertises(spec: ClusterSpec, labels: Labels, version: int) -> bool:
    """Return whether a node (by its labels) advertises service IPs of one family."""
    if not any(n.version == version for n in service_entries(spec.bgp)):
        return False  # the common case first: no service CIDR at all
    return dict(labels).get(EXCLUDE_LABEL) != "true"


def aggregates(bgp: Bgp) -> bool:
    """Return whether every node advertises the LoadBalancer CIDRs whole (Calico's default)."""
    return bgp.service_loadbalancer_aggregation == "Enabled"


@dataclass(frozen=True)
class ServiceView:
    """One family's service part of a node's bird.conf."""

    protocol: str  # the static protocol's name (calicc_services, calicc_services_v6)
    routes: tuple[Network, ...]  # CIDRs held as blackholes on every node
    within: str  # BIRD prefix set of every service entry of the family, any length inside
    include: str  # the agent's file of Local /32s, relative to bird.conf


@lru_cache(maxsize=4)
def _view(
    lists: tuple[tuple[Network, ...], tuple[Network, ...], tuple[Network, ...]],
    aggregate: bool,
    version: int,
    suffix: str,
) -> ServiceView | None:
    cluster, external, balanced = lists
    nets = [n for n in (*cluster, *external, *balanced) if n.version == version]
    if not nets:
        return None
    single = {*external, *balanced}
    per_service = set() if aggregate else set(balanced)
    routes = sorted(
        {n for n in nets if not (is_single(n) and n in single) and n not in per_service}
    )
    within = "[ " + ", ".join(f"{n}+" for n in sorted(set(nets))) + " ]"
    return ServiceView(SERVICE_PROTOCOL + suffix, tuple(routes), within, SERVICE_INCLUDES[version])


def service_view(
    spec: ClusterSpec, node: NodePlan, version: int, suffix: str
) -> ServiceView | None:
    """Return the node's service part of bird.conf for one family (None: it advertises none)."""
    if not advertises(spec, node.labels, version):
        return None
    bgp = spec.bgp  # the cache's key: the lists alone (hashing the whole Bgp costs far more)
    lists = (bgp.service_cluster_ips, bgp.service_external_ips, bgp.service_loadbalancer_ips)
    return _view(lists, aggregates(bgp), version, suffix)


def service_ips(spec: ClusterSpec, node: NodePlan) -> ServiceIps | None:
    """Return node.json's `bird.services` (None: the node advertises no service IP)."""
    families = tuple(
        v for v in (V4, V6) if advertises(spec, node.labels, v) and _has_family(node, v)
    )
    if not families:
        return None
    bgp = spec.bgp
    return ServiceIps(
        cluster_ips=bgp.service_cluster_ips,
        external_ips=bgp.service_external_ips,
        loadbalancer_ips=bgp.service_loadbalancer_ips,
        aggregate_loadbalancer_ips=aggregates(bgp),
        families=families,
    )


def _has_family(node: NodePlan, version: int) -> bool:
    return (node.address if version == V4 else node.address_v6) is not None
