"""Cluster-wide members of the runtime ipsets: pods x namespaces x selectors -> members.

Pure functions, no I/O. The selector sets (`cali40s:`) of a NetworkPolicy peer must hold every
matching pod of the cluster, not only the pods of this node, and the named-port sets
(`cali40n:`) every matching pod's `ip,proto:port`; a pod's IPv6 address goes to their
`family inet6` twins (`cali60s:`, `cali60n:`), each address to the sets of its family. The
agent computes them from cluster-wide pod facts (the Kubernetes API, agent/kube_endpoints.py;
or peer endpoint records, agent/peers.py) and unions them with the node's own endpoints
(agent/endpoints.py) before the ipset diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from calicc.contract.endpoint import named_port_members, selector_sets_for_pod, set_members
from calicc.contract.manifest import Ipset

NAMED_PORT_TYPE = "hash:ip,port"
LIVE_PHASES = frozenset({"Running", "Pending"})
Members = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class ClusterPod:
    """One pod address of the cluster and the facts policy selects on."""

    namespace: str
    name: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[tuple[str, str, int], ...] = ()  # named container ports: (name, proto, number)


Pool = IPv4Network | IPv6Network


def _pod_addresses(status: Mapping[str, Any], pools: tuple[Pool, ...]) -> list[str]:
    listed = [str(p.get("ip", "")) for p in status.get("podIPs") or []]
    texts = listed or [str(status.get("podIP") or "")]
    found = []
    for text in texts:
        try:
            address = ip_address(text)
        except ValueError:
            continue
        if any(address.version == pool.version and address in pool for pool in pools):
            found.append(str(address))
    return sorted(set(found))


def _named_ports(spec: Mapping[str, Any]) -> tuple[tuple[str, str, int], ...]:
    return tuple(
        sorted(
            (str(p["name"]), str(p.get("protocol", "TCP")).upper(), int(p["containerPort"]))
            for c in spec.get("containers") or []
            for p in c.get("ports") or []
            if p.get("name") and p.get("containerPort") is not None
        )
    )


def pods_from_list(body: Mapping[str, Any], pools: Iterable[Pool]) -> list[ClusterPod]:
    """Return the live pods of a Kubernetes PodList that hold an address in one of `pools`.

    A dual-stack pod is one ClusterPod per address (podIPs), of either family.

    Pods in phase Running or Pending count (Succeeded and Failed pods gave their address back);
    host-network pods are left out because their address (the node's) is in no pool.

    Args:
        body: the decoded answer of GET /api/v1/pods.
        pools: the cluster's pools (node.json `pools`).
    """
    nets = tuple(pools)
    found = []
    for item in body.get("items") or []:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        if status.get("phase") not in LIVE_PHASES:
            continue
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        ports = _named_ports(item.get("spec") or {})
        for address in _pod_addresses(status, nets):
            namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
            found.append(ClusterPod(namespace, name, address, labels, ports))
    return sorted(found, key=lambda p: (p.namespace, p.name, p.address))


def namespaces_from_list(body: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Return namespace name -> labels from a decoded NamespaceList."""
    spaces = {}
    for item in body.get("items") or []:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        spaces[str(meta.get("name", ""))] = {str(k): str(v) for k, v in labels.items()}
    return spaces


def cluster_members(
    ipsets: Iterable[Ipset],
    pods: Iterable[ClusterPod],
    namespaces: Mapping[str, Mapping[str, str]],
) -> dict[str, frozenset[str]]:
    """Return every runtime set's members: the pods its selector matches and their named ports.

    Args:
        ipsets: node.json's ipsets (only those with a `selector` are runtime sets).
        pods: the cluster's pods.
        namespaces: namespace name -> labels (a namespace missing here has no labels).

    Examples:
        >>> s = Ipset(name="cali40s:x", type="hash:ip",
        ...           selector={"namespace": "shop", "podSelector": {"matchLabels": {"a": "1"}}})
        >>> pods = [ClusterPod("shop", "p", "10.0.0.5", {"a": "1"}),
        ...         ClusterPod("web", "q", "10.0.0.6", {"a": "1"})]
        >>> cluster_members([s], pods, {})
        {'cali40s:x': frozenset({'10.0.0.5'})}
    """
    runtime = [s for s in ipsets if s.selector is not None]
    kinds = {s.name: s.type for s in runtime}
    members: dict[str, set[str]] = {s.name: set() for s in runtime}
    selected: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, ...]] = {}
    for pod in pods:
        key = (pod.namespace, tuple(sorted(pod.labels.items())))
        if key not in selected:  # replicas share labels: evaluate the selectors once
            spaces = namespaces.get(pod.namespace, {})
            selected[key] = selector_sets_for_pod(runtime, pod.namespace, pod.labels, spaces)
        sets = [name for name in selected[key] if kinds[name] != NAMED_PORT_TYPE]
        for name, address in set_members(sets, [pod.address]):
            members[name].add(address)
        for name, member in named_port_members(runtime, pod.address, pod.ports):
            members[name].add(member)
    return {name: frozenset(found) for name, found in members.items()}


def union(*maps: Members) -> dict[str, frozenset[str]]:
    """Return the per-set union of several member maps.

    Examples:
        >>> merged = union({"a": frozenset({"1"})}, {"a": frozenset({"2"}), "b": frozenset()})
        >>> {name: sorted(found) for name, found in merged.items()}
        {'a': ['1', '2'], 'b': []}
    """
    merged: dict[str, set[str]] = {}
    for one in maps:
        for name, found in one.items():
            merged.setdefault(name, set()).update(found)
    return {name: frozenset(found) for name, found in sorted(merged.items())}
