"""The lab's network: which namespaces exist and how they are wired (pure), and making it.

Per node subnet a bridge namespace; a router namespace with one leg per subnet is every node's
default gateway; an "external" namespace (203.0.113.0/24, a documentation range) sits behind the
router; external BGP speakers get a namespace on the bridge of their subnet (or on the router
when their address is the router's own address in a subnet: a ToR).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from calicc.compiler.plan import ClusterPlan
from calicc.lab.names import ns_name, port_name

EXTERNAL_NET = IPv4Network("203.0.113.0/24")
EXTERNAL_ROUTER = IPv4Interface("203.0.113.1/24")
EXTERNAL_HOST = IPv4Interface("203.0.113.10/24")


@dataclass(frozen=True)
class Subnet:
    """One underlay subnet: its bridge namespace and the router's address on it."""

    cidr: IPv4Network
    ns: str
    gateway: IPv4Address
    router_port: str


@dataclass(frozen=True)
class Host:
    """A namespace attached to a subnet's bridge (a node or an external speaker)."""

    name: str
    ns: str
    address: IPv4Interface
    bridge_port: str


@dataclass(frozen=True)
class Topology:
    """Everything `lab up` wires, derived from the plan alone."""

    lab: str
    subnets: tuple[Subnet, ...]
    nodes: tuple[Host, ...]
    speakers: tuple[Host, ...]
    router_ns: str
    external_ns: str

    def node(self, name: str) -> Host:
        """Return the host of node `name`."""
        return next(h for h in self.nodes if h.name == name)

    def gateway(self, node: str) -> IPv4Address:
        """Return the default router address of node `node` (the router's leg on its subnet)."""
        subnet = self.subnet_of(self.node(node).address.ip)
        if subnet is None:
            raise KeyError(f"node {node} is on none of the lab's subnets")
        return subnet.gateway

    def subnet_of(self, address: IPv4Address) -> Subnet | None:
        """Return the subnet holding `address`, if any."""
        return next((s for s in self.subnets if address in s.cidr), None)


def _gateway(cidr: IPv4Network, taken: set[IPv4Address]) -> IPv4Address:
    """Return the highest host address of `cidr` that no node or speaker uses."""
    for host in reversed(list(cidr.hosts())[-64:]):
        if host not in taken:
            return host
    raise ValueError(f"no free address for the lab router in {cidr}")


def speaker_addresses(plan: ClusterPlan) -> tuple[IPv4Address, ...]:
    """Return the addresses of external BGP peers that are not cluster nodes, sorted."""
    nodes = {n.ipv4.ip for n in plan.nodes}
    peers = {p.peer_ip for p in plan.spec.bgp.peers if isinstance(p.peer_ip, IPv4Address)}
    return tuple(sorted(peers - nodes))


def plan_topology(plan: ClusterPlan, lab: str) -> Topology:
    """Derive the lab's namespaces and links from a cluster plan (no I/O).

    A peer whose address is the router's chosen gateway runs in the router namespace; the
    gateway avoids node addresses and other peers' addresses.
    """
    speakers = speaker_addresses(plan)
    taken = {n.ipv4.ip for n in plan.nodes}
    subnets = tuple(
        Subnet(
            cidr=cidr,
            ns=ns_name(lab, "br", str(cidr.network_address)),
            gateway=_gateway(cidr, taken | {s for s in speakers if _is_own(s, cidr)}),
            router_port=port_name("s", str(cidr)),
        )
        for cidr in plan.node_subnets
    )
    nodes = tuple(
        Host(n.name, ns_name(lab, "node", n.name), n.ipv4, port_name("n", n.name))
        for n in plan.nodes
    )
    return Topology(
        lab=lab,
        subnets=subnets,
        nodes=nodes,
        speakers=tuple(_speaker(lab, ip, subnets) for ip in speakers),
        router_ns=ns_name(lab, "router"),
        external_ns=ns_name(lab, "ext"),
    )


def _is_own(address: IPv4Address, cidr: IPv4Network) -> bool:
    """A peer address in `cidr` keeps its own namespace unless it is the subnet's last host."""
    return address in cidr and address != list(cidr.hosts())[-1]


def _speaker(lab: str, ip: IPv4Address, subnets: tuple[Subnet, ...]) -> Host:
    """Return where the external speaker at `ip` lives."""
    subnet = next((s for s in subnets if ip in s.cidr), None)
    if subnet is not None and subnet.gateway == ip:
        return Host(str(ip), ns_name(lab, "router"), IPv4Interface(f"{ip}/32"), "")
    prefix = subnet.cidr.prefixlen if subnet else 32
    return Host(
        str(ip),
        ns_name(lab, "peer", str(ip)),
        IPv4Interface(f"{ip}/{prefix}"),
        port_name("p", str(ip)),
    )
