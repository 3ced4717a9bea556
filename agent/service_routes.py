"""Which Service addresses this node advertises as /32 (/128): Calico's rule, as a pure function.

Calico's route generator (confd/pkg/backends/calico/routes.go) advertises a Service's
addresses from a node when:

- the Service is of type ClusterIP, NodePort or LoadBalancer and has a cluster IP (not headless);
- its externalTrafficPolicy is Local and one of its EndpointSlices (label
  kubernetes.io/service-name, an addressType among the Service's ipFamilies) holds a ready
  endpoint (`conditions.ready` true or unset) whose nodeName is this node;
- its policy is Cluster and it has a single address (/32, /128) of service_external_ips among its
  externalIPs, or of service_loadbalancer_ips as its LoadBalancer IP: then from every node (a
  range of many addresses is advertised whole by every node instead);
- with bgp.service_loadbalancer_aggregation Disabled, a Service whose policy is not Local is
  advertised from every node while any of its endpoints is ready (anywhere).

The addresses are its cluster IPs, its external IPs and its LoadBalancer ingress IPs, each only
inside a CIDR of its own list (cluster.yaml bgp.service_cluster_ips, service_external_ips,
service_loadbalancer_ips): what the ToR accepts, and all that BIRD's export filter passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from ipaddress import ip_address
from typing import Any

from calicc.contract.services import Address, Network, ServiceIps, is_single

SERVED_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer"})
SERVICE_LABEL = "kubernetes.io/service-name"
Key = tuple[str, str]  # (namespace, name)


def parse_ip(text: object) -> Address | None:
    """Return an address, or None for anything that is not one (an API object is not trusted).

    Examples:
        >>> parse_ip("10.96.0.10"), parse_ip("None"), parse_ip(7)
        (IPv4Address('10.96.0.10'), None, None)
    """
    if not isinstance(text, str):
        return None
    try:
        return ip_address(text)
    except ValueError:
        return None


def _inside(address: Address | None, nets: Iterable[Network], single: bool = False) -> bool:
    return address is not None and any(
        address.version == net.version and address in net and (is_single(net) or not single)
        for net in nets
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _spec(svc: dict[str, Any]) -> dict[str, Any]:
    return _dict(svc.get("spec"))


def _ips(values: object) -> list[Address]:
    found = [parse_ip(v) for v in values] if isinstance(values, list) else []
    return [a for a in found if a is not None]


def _ingress(svc: dict[str, Any]) -> list[Address]:
    ingress = _dict(_dict(svc.get("status")).get("loadBalancer")).get("ingress")
    items = ingress if isinstance(ingress, list) else []
    return _ips([i.get("ip") for i in items if isinstance(i, dict)])


def service_addresses(svc: dict[str, Any], ips: ServiceIps) -> list[Address]:
    """Return the Service's addresses inside the configured CIDRs (cluster, external, LB)."""
    spec = _spec(svc)
    cluster = [a for a in _ips(spec.get("clusterIPs")) if _inside(a, ips.cluster_ips)]
    external = [a for a in _ips(spec.get("externalIPs")) if _inside(a, ips.external_ips)]
    balanced = [a for a in _ingress(svc) if _inside(a, ips.loadbalancer_ips)]
    return [*cluster, *external, *balanced]


def _single_ip(svc: dict[str, Any], ips: ServiceIps) -> bool:
    """Return whether a Cluster Service has a single-address external or LoadBalancer IP."""
    spec = _spec(svc)
    if any(_inside(a, ips.external_ips, single=True) for a in _ips(spec.get("externalIPs"))):
        return True
    if spec.get("type") != "LoadBalancer":
        return False
    lb_ips = [*_ips([spec.get("loadBalancerIP")]), *_ingress(svc)]
    return any(_inside(a, ips.loadbalancer_ips, single=True) for a in lb_ips)


def _ready_endpoint(svc: dict[str, Any], slices: list[dict[str, Any]], node: str | None) -> bool:
    """Return whether a slice of the Service's families holds a ready endpoint (on `node`)."""
    families = _spec(svc).get("ipFamilies")
    families = families if isinstance(families, list) else []
    for piece in slices:
        if piece.get("addressType") not in families:
            continue
        for endpoint in piece.get("endpoints") or []:
            if not isinstance(endpoint, dict):
                continue
            if node is not None and endpoint.get("nodeName") != node:
                continue
            ready = _dict(endpoint.get("conditions")).get("ready")
            if ready is None or ready is True:
                return True
    return False


def advertised_here(
    svc: dict[str, Any], slices: list[dict[str, Any]], node: str, ips: ServiceIps
) -> bool:
    """Return whether this node advertises the Service's addresses (Calico's rule, see module)."""
    spec = _spec(svc)
    if spec.get("type", "ClusterIP") not in SERVED_TYPES:
        return False
    if spec.get("clusterIP") in (None, "", "None"):
        return False
    policy = spec.get("externalTrafficPolicy")  # unset on ClusterIP Services: not Cluster
    if policy == "Cluster" and _single_ip(svc, ips):
        return True
    if policy != "Local" and ips.aggregate_loadbalancer_ips:
        return False  # the CIDRs every node advertises cover it
    return _ready_endpoint(svc, slices, node if policy == "Local" else None)


def _key(obj: dict[str, Any]) -> Key:
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def slices_by_service(slices: Iterable[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    """Return the EndpointSlices of each Service, by the Service's (namespace, name)."""
    found: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for piece in slices:
        meta = _dict(piece.get("metadata"))
        name = _dict(meta.get("labels")).get(SERVICE_LABEL)
        if isinstance(name, str) and name:
            found[(str(meta.get("namespace", "")), name)].append(piece)
    return found


def host_routes(
    services: Iterable[dict[str, Any]],
    slices: Iterable[dict[str, Any]],
    node: str,
    ips: ServiceIps,
) -> dict[int, list[Address]]:
    """Return the addresses this node advertises as host routes, per IP version, sorted."""
    by_service = slices_by_service(slices)
    found: dict[int, set[Address]] = defaultdict(set)
    for svc in services:
        if isinstance(svc, dict) and advertised_here(svc, by_service.get(_key(svc), []), node, ips):
            for address in service_addresses(svc, ips):
                found[address.version].add(address)
    return {v: sorted(found[v]) for v in ips.families}
