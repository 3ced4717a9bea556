"""A node's filter, nat and raw tables as its agent will hold them, and who is in which set.

The tables are parsed from the node's rules text as trace/node_read.py assembles it (the node's
file with its pods' endpoint chains, its host endpoints and the hooks, as the agent applies
them), so rule numbers are the node's (`iptables -L CHAIN --line-numbers`).

Set membership is the agent's: static members as assembled (node table, blocks, networks),
a pod's address in the selector sets its namespace and labels match and in the named-port
sets of its container ports (contract/endpoint.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from calicc.agent.cni.naming import host_veth_name
from calicc.contract.endpoint import named_port_members, selector_sets_for_pod
from calicc.trace.node import SetFact
from calicc.trace.rules import Table, parse_tables

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
HEADER = re.compile(r"^# (cali-[\w-]+): (.*?) \(([^()\s]+:\d+)\)", re.MULTILINE)


@dataclass(frozen=True)
class PodAt:
    """A pod of the pods file with its addresses (IPv4 first) and host veth."""

    namespace: str
    name: str
    node: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, number), as the API lists them
    addresses: tuple[Address, ...]

    @property
    def key(self) -> str:
        """Return `namespace/name`."""
        return f"{self.namespace}/{self.name}"

    @property
    def iface(self) -> str:
        """Return the host end of the pod's veth (Calico's name for a Kubernetes pod)."""
        return host_veth_name(f"{self.namespace}.{self.name}")


@dataclass(frozen=True)
class NodeTables:
    """The tables of one node and family, parsed, and what its policy chains stand for."""

    node: str
    family: int
    tables: Mapping[str, Table]
    sources: Mapping[str, tuple[str, str]]  # chain -> (what it is, file:line)


def node_tables(node: str, text: str, family: int) -> NodeTables:
    """Return the parsed tables of `family` of the node's rules `text` (trace/node_read.py)."""
    sources = {c: (what, where) for c, what, where in HEADER.findall(text)}
    return NodeTables(node, family, parse_tables(text, family), sources)


class Membership:
    """Answers "is this address (and port) in that set" as the node's ipsets will.

    `named_ports`: whether pods' container ports reach the named-port sets (the node's CNI
    plugin reads the Kubernetes API); without, those sets stay empty.
    """

    def __init__(
        self,
        ipsets: Sequence[SetFact],
        pod_at: Callable[[Address], PodAt | None],
        named_ports: bool = True,
    ) -> None:
        self._sets = {s.name: s for s in ipsets}
        self._ipsets = tuple(ipsets)
        self._pod_at = pod_at
        self._named_ports = named_ports
        self._hosts: dict[str, frozenset[Address]] = {}  # single-address members, by set
        self._nets: dict[str, tuple[Network, ...]] = {}  # the wider networks
        for s in ipsets:
            if s.type in ("hash:net", "hash:ip"):
                nets = [ip_network(m.split(",")[0], strict=False) for m in s.members]
                single = [n for n in nets if n.prefixlen == n.max_prefixlen]
                self._hosts[s.name] = frozenset(n.network_address for n in single)
                self._nets[s.name] = tuple(n for n in nets if n.prefixlen != n.max_prefixlen)
        self._selected = cache(self._selector_sets)
        self._named = cache(self._named_members)

    def member(self, name: str, address: Address, proto: str | None, port: int | None) -> bool:
        """Return whether the set `name` holds `address` (with `proto`/`port`: hash:ip,port)."""
        found = self._sets.get(name)
        if found is None:
            return False
        if found.type == "hash:ip,port":
            if proto is None or port is None or not self._named_ports:
                return False
            return f"{address},{proto}:{port}" in self._named(address)
        if address in self._hosts.get(name, ()) or any(
            address in net for net in self._nets.get(name, ())
        ):
            return True
        return found.selector is not None and name in self._selected(address)

    def _selector_sets(self, address: Address) -> frozenset[str]:
        pod = self._pod_at(address)
        if pod is None:
            return frozenset()
        return frozenset(
            selector_sets_for_pod(self._ipsets, pod.namespace, pod.labels, pod.namespace_labels)
        )

    def _named_members(self, address: Address) -> frozenset[str]:
        pod = self._pod_at(address)
        if pod is None:
            return frozenset()
        return frozenset(m for _, m in named_port_members(self._ipsets, str(address), pod.ports))
