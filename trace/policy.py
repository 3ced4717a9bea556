"""A node's filter, nat and raw tables as its agent will hold them, and who is in which set.

The tables are the node's own file (the role's iptables rules, or ip6tables rules) with the
endpoint chains of the node's pods merged in and its host endpoints, by the functions the
agent applies them with (contract/endpoint.py `with_endpoints`, contract/host.py `with_host`,
in agent/apply.py's order), plus the hook rules every node keeps at the top or bottom of the
built-in chains (cluster.json `jump_rules`; in IPv6 only those whose target chain the
file declares, as the agent keeps them: agent/iptables.py `family_jumps`). A pod's endpoint
chains are the CNI plugin's (agent/cni/endpoint_policy.py `rules_for_all` on the record ADD
writes), so rule numbers are the node's (`iptables -L CHAIN --line-numbers`) for every chain
calicc owns.

Set membership is the agent's: static members as assembled (node table, blocks, networks),
a pod's address in the selector sets its namespace and labels match and in the named-port
sets of its container ports (contract/endpoint.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address, IPv6Address, ip_network

from calicc.agent.bundle import Bundle
from calicc.agent.cni.endpoint_policy import EndpointRecord, rules_for_all
from calicc.agent.cni.naming import host_veth_name
from calicc.agent.iptables import family_jumps, parse_rules
from calicc.contract.endpoint import named_port_members, selector_sets_for_pod, with_endpoints
from calicc.contract.host import with_host
from calicc.contract.manifest import Ipset, JumpRule
from calicc.contract.names import CONFLIST, IP6TABLES_FILE, IPTABLES_FILE, V4, V6
from calicc.trace.rules import Table, parse_tables

Address = IPv4Address | IPv6Address
HEADER = re.compile(r"^# (cali-[\w-]+): (.*?) \(([^()\s]+:\d+)\)", re.MULTILINE)
BUILTIN_POLICY = "ACCEPT"  # what the tree says of the built-in chains' own policy: nothing


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


def record_of(pod: PodAt) -> EndpointRecord:
    """Return the endpoint record the CNI plugin writes for the pod at ADD."""
    v4 = [str(a) for a in pod.addresses if a.version == V4]
    v6 = [str(a) for a in pod.addresses if a.version == V6]
    return EndpointRecord(
        iface=pod.iface, container_id="", ifname="eth0", address=(v4 or v6)[0],
        namespace=pod.namespace, labels=dict(pod.labels),
        namespace_labels=dict(pod.namespace_labels), members=(),
        address_v6=v6[0] if v6 else None,
    )  # fmt: skip


def _hooks(text: str, jumps: Sequence[JumpRule], tables: Sequence[str]) -> str:
    """Return `text` with the built-in chains and the hook rules `jumps` in them."""
    out: list[str] = []
    table = ""
    for line in text.splitlines():
        out.append(line)
        if line.startswith("*"):
            table = line[1:].strip()
            if table not in tables:
                continue
            rules = [j for j in jumps if j.table == table]
            for chain in sorted({j.chain for j in rules}):
                out.append(f":{chain} {BUILTIN_POLICY} [0:0]")
            out += [f"-A {j.chain} {j.rule}" for j in rules]
    return "\n".join(out) + "\n"


def node_text(bundle: Bundle, pods: Sequence[PodAt], family: int) -> str:
    """Return the node's rules text of `family` with its pods' endpoint chains and the hooks."""
    manifest = bundle.manifest
    records = [record_of(p) for p in pods]
    name = IPTABLES_FILE if family == V4 else IP6TABLES_FILE
    if not bundle.has(name):
        return ""
    text = bundle.text(name)
    if family == V4:
        text = with_endpoints(text, rules_for_all(records, manifest, V4))
        text = with_host(text, manifest.host)
        jumps = manifest.jump_rules
    else:  # the hooks the agent keeps in IPv6: those into chains the file declares
        text = with_host(text, manifest.host, family=6)
        jumps = family_jumps(manifest.jump_rules, parse_rules(text))
        text = with_endpoints(text, rules_for_all(records, manifest, V6))
    declared = re.findall(r"^\*(\w+)$", text, re.MULTILINE)
    return _hooks(text, jumps, declared)


@dataclass(frozen=True)
class NodeTables:
    """The tables of one node and family, parsed, and what its policy chains stand for."""

    node: str
    family: int
    tables: Mapping[str, Table]
    sources: Mapping[str, tuple[str, str]]  # chain -> (what it is, file:line)


def node_tables(bundle: Bundle, pods: Sequence[PodAt], family: int) -> NodeTables:
    """Return the node's parsed tables of `family` (its pods' endpoint chains merged in)."""
    text = node_text(bundle, pods, family)
    sources = {c: (what, where) for c, what, where in HEADER.findall(text)}
    return NodeTables(bundle.manifest.node.name, family, parse_tables(text, family), sources)


def knows_the_api(bundle: Bundle) -> bool:
    """Return whether the node's CNI plugin reads pods from the Kubernetes API.

    Its conflist's calicc plugin has a `kubernetes` section: only then are container ports,
    and so named ports, known; without it a named port matches nothing.
    """
    if not bundle.has(CONFLIST):
        return False
    plugins = json.loads(bundle.text(CONFLIST)).get("plugins") or []
    return any(p.get("type") == "calicc" and "kubernetes" in p for p in plugins)


class Membership:
    """Answers "is this address (and port) in that set" as the node's ipsets will.

    `named_ports`: whether pods' container ports reach the named-port sets (the node's CNI
    plugin reads the Kubernetes API); without, those sets stay empty.
    """

    def __init__(
        self,
        ipsets: Sequence[Ipset],
        pod_at: Callable[[Address], PodAt | None],
        named_ports: bool = True,
    ) -> None:
        self._sets = {s.name: s for s in ipsets}
        self._ipsets = tuple(ipsets)
        self._pod_at = pod_at
        self._named_ports = named_ports
        self._nets = {
            s.name: tuple(ip_network(m.split(",")[0], strict=False) for m in s.members)
            for s in ipsets
            if s.type in ("hash:net", "hash:ip")
        }
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
        if any(address in net for net in self._nets.get(name, ())):
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
