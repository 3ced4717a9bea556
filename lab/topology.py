"""The lab's network: which namespaces exist and how they are wired (pure), and making it.

Per underlay segment a bridge namespace; a router namespace with one leg per segment is every
node's default gateway, of both families; an "external" namespace (203.0.113.0/24 and
2001:db8:113::/64, documentation ranges) sits behind the router; external BGP speakers get a
namespace on the bridge of their subnet (or on the router when their address is the router's
own address in a subnet: a ToR).

A segment is one IPv4 node subnet and the IPv6 subnet of its nodes (dual stack), or one IPv6
node subnet whose nodes have no IPv4 address (IPv6 only). The router holds the highest free
host address of each family on each segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
)

from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.contract.names import V4
from calicc.lab.names import ns_name, port_name

EXTERNAL_NET = IPv4Network("203.0.113.0/24")
EXTERNAL_ROUTER = IPv4Interface("203.0.113.1/24")
EXTERNAL_HOST = IPv4Interface("203.0.113.10/24")
EXTERNAL_NET_V6 = IPv6Network("2001:db8:113::/64")
EXTERNAL_ROUTER_V6 = IPv6Interface("2001:db8:113::1/64")
EXTERNAL_HOST_V6 = IPv6Interface("2001:db8:113::10/64")

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class Subnet:
    """One underlay segment: its bridge namespace and the router's addresses on it.

    `cidr` and `gateway` are None on a segment of IPv6-only nodes; `cidr_v6` and `gateway_v6`
    None on one of IPv4-only nodes.
    """

    cidr: IPv4Network | None
    ns: str
    gateway: IPv4Address | None
    router_port: str
    cidr_v6: IPv6Network | None = None
    gateway_v6: IPv6Address | None = None

    def holds(self, address: Address) -> bool:
        """Return whether `address` is in one of the segment's subnets."""
        return any(
            address in c for c in (self.cidr, self.cidr_v6) if c and c.version == address.version
        )

    def gateway_of(self, version: int) -> Address | None:
        """Return the router's address of family `version` on this segment (None if none)."""
        return self.gateway if version == V4 else self.gateway_v6


@dataclass(frozen=True)
class Host:
    """A namespace attached to a segment's bridge (a node or an external speaker).

    `address` is None for an IPv6-only node or speaker (then `address_v6` is set).
    """

    name: str
    ns: str
    address: IPv4Interface | None
    bridge_port: str
    address_v6: IPv6Interface | None = None

    @property
    def primary(self) -> IPv4Interface | IPv6Interface:
        """Return the host's IPv4 address, else its IPv6 one (which segment it is on)."""
        found = self.address or self.address_v6
        if found is None:
            raise ValueError(f"lab host {self.name} has no address")
        return found


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

    def segment(self, node: str) -> Subnet:
        """Return the segment node `node` is on."""
        subnet = self.subnet_of(self.node(node).primary.ip)
        if subnet is None:
            raise KeyError(f"node {node} is on none of the lab's subnets")
        return subnet

    def gateway(self, node: str) -> IPv4Address:
        """Return the IPv4 default router of node `node` (the router's leg on its subnet)."""
        gateway = self.segment(node).gateway
        if gateway is None:
            raise KeyError(f"node {node} has no IPv4 subnet")
        return gateway

    def gateways(self, node: str) -> dict[int, Address]:
        """Return the default routers of node `node` by family (4, 6), of those it has."""
        segment = self.segment(node)
        host = self.node(node)
        found: dict[int, Address] = {}
        if host.address is not None and segment.gateway is not None:
            found[4] = segment.gateway
        if host.address_v6 is not None and segment.gateway_v6 is not None:
            found[6] = segment.gateway_v6
        return found

    def subnet_of(self, address: Address) -> Subnet | None:
        """Return the segment holding `address`, if any."""
        return next((s for s in self.subnets if s.holds(address)), None)


def _gateway(cidr: Network, taken: set[Address]) -> Address:
    """Return the highest host address of `cidr` that no node or speaker uses."""
    last = int(cidr.broadcast_address) - (1 if cidr.version == V4 else 0)
    for offset in range(64):
        host = ip_address(last - offset)
        if host not in taken and host in cidr and host != cidr.network_address:
            return host
    raise ValueError(f"no free address for the lab router in {cidr}")


def _last_host(cidr: Network) -> Address:
    return ip_address(int(cidr.broadcast_address) - (1 if cidr.version == V4 else 0))


def _node_addresses(plan: ClusterPlan) -> set[Address]:
    found: set[Address] = set()
    for n in plan.nodes:
        found |= {a.ip for a in (n.address, n.address_v6) if a is not None}
    return found


def speaker_addresses(plan: ClusterPlan) -> tuple[Address, ...]:
    """Return the addresses of external BGP peers that are not cluster nodes (IPv4 first)."""
    peers = {p.peer_ip for p in plan.spec.bgp.peers}
    return tuple(sorted(peers - _node_addresses(plan), key=lambda a: (a.version, a)))


def segments(plan: ClusterPlan) -> list[tuple[IPv4Network | None, IPv6Network | None]]:
    """Return each segment's (IPv4 subnet, IPv6 subnet): IPv4 ones first, sorted (no I/O).

    An IPv6-only node joins the segment whose nodes' IPv6 subnet holds its address; one in no
    such subnet makes a segment of its IPv6 subnet.

    Raises:
        ValueError: one IPv4 subnet's nodes have two IPv6 subnets, or two share one.
    """
    paired: dict[IPv4Network, IPv6Network | None] = {}
    alone: set[IPv6Network] = set()
    for node in plan.nodes:
        v6 = node.address_v6.network if node.address_v6 else None
        if node.address is None:
            alone |= {v6} if v6 else set()
            continue
        known = paired.setdefault(node.address.network, v6)
        if v6 is not None and known not in (None, v6):
            raise ValueError(
                f"the lab puts one IPv6 subnet beside each IPv4 subnet: {node.address.network} "
                f"has nodes in {known} and {v6}"
            )
        paired[node.address.network] = known or v6
    taken = [v6 for v6 in paired.values() if v6 is not None]
    if len(taken) != len(set(taken)):
        raise ValueError("the lab puts each IPv6 node subnet beside one IPv4 subnet")
    ordered: list[tuple[IPv4Network | None, IPv6Network | None]] = sorted(paired.items())
    return ordered + [(None, v6) for v6 in sorted(alone - set(taken))]


def _subnet(
    lab: str,
    v4: IPv4Network | None,
    v6: IPv6Network | None,
    taken: set[Address],
    speakers: tuple[Address, ...],
) -> Subnet:
    def gateway(cidr: Network | None) -> Address | None:
        if cidr is None:
            return None
        own = {s for s in speakers if _is_own(s, cidr)}
        return _gateway(cidr, taken | own)

    gateway4, gateway6 = gateway(v4), gateway(v6)
    key: Network = v4 or v6  # type: ignore[assignment]  # a segment has one or both
    return Subnet(
        cidr=v4,
        ns=ns_name(lab, "br", str(key.network_address).replace(":", "-")),
        gateway=gateway4 if isinstance(gateway4, IPv4Address) else None,
        router_port=port_name("s", str(key)),
        cidr_v6=v6,
        gateway_v6=gateway6 if isinstance(gateway6, IPv6Address) else None,
    )


def node_host(lab: str, node: NodePlan) -> Host:
    """Return the lab host of cluster node `node`."""
    return Host(
        node.name,
        ns_name(lab, "node", node.name),
        node.address,
        port_name("n", node.name),
        node.address_v6,
    )


def plan_topology(plan: ClusterPlan, lab: str) -> Topology:
    """Derive the lab's namespaces and links from a cluster plan (no I/O).

    A peer whose address is the router's chosen gateway runs in the router namespace; the
    gateway avoids node addresses and other peers' addresses.
    """
    speakers = speaker_addresses(plan)
    taken = _node_addresses(plan)
    subnets = tuple(_subnet(lab, v4, v6, taken, speakers) for v4, v6 in segments(plan))
    return Topology(
        lab=lab,
        subnets=subnets,
        nodes=tuple(node_host(lab, n) for n in plan.nodes),
        speakers=tuple(_speaker(lab, ip, subnets) for ip in speakers),
        router_ns=ns_name(lab, "router"),
        external_ns=ns_name(lab, "ext"),
    )


def _is_own(address: Address, cidr: Network) -> bool:
    """A peer address in `cidr` keeps its own namespace unless it is the subnet's last host."""
    return address.version == cidr.version and address in cidr and address != _last_host(cidr)


def _speaker(lab: str, ip: Address, subnets: tuple[Subnet, ...]) -> Host:
    """Return where the external speaker at `ip` lives."""
    subnet = next((s for s in subnets if s.holds(ip)), None)
    if subnet is not None and subnet.gateway_of(ip.version) == ip:
        return _host(str(ip), ns_name(lab, "router"), ip, None, "")
    cidr = (subnet.cidr if ip.version == V4 else subnet.cidr_v6) if subnet else None
    prefix = cidr.prefixlen if cidr else ip.max_prefixlen
    return _host(
        str(ip),
        ns_name(lab, "peer", str(ip).replace(":", "-")),
        ip,
        prefix,
        port_name("p", str(ip)),
    )


def _host(name: str, ns: str, ip: Address, prefix: int | None, port: str) -> Host:
    length = ip.max_prefixlen if prefix is None else prefix
    if isinstance(ip, IPv4Address):
        return Host(name, ns, IPv4Interface(f"{ip}/{length}"), port)
    return Host(name, ns, None, port, IPv6Interface(f"{ip}/{length}"))
