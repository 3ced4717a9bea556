"""A node of the rendered tree as `calicc trace` uses it: plain facts, no pydantic.

The facts are what the trace takes from the node's manifest as its agent assembles it
(trace/node_read.py reads it with the agent's loader): the MTUs and tunnel links, the routes
the agent owns, the pools, the ipsets with their static members, and whether the node's CNI
plugin reads the Kubernetes API. Being plain data, they are kept between runs as JSON
(trace/node_cache.py): a later `calicc trace` reads them back without the loader's imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class LinkFact:
    """A tunnel device of the node and its MTU."""

    name: str
    mtu: int


@dataclass(frozen=True)
class RouteFact:
    """A route the node's agent owns (node.json `routes`)."""

    dst: Network
    type: str  # "unicast" or "blackhole"
    via: Address | None
    dev: str | None
    onlink: bool


@dataclass(frozen=True)
class PoolFact:
    """A pool of the cluster, as the trace decides routes and encapsulation by it."""

    name: str
    cidr: Network
    encapsulation: str  # "none", "ipip" or "vxlan"
    mode: str  # "Always", "CrossSubnet" or "Never"
    nat_outgoing: bool


@dataclass(frozen=True)
class SetFact:
    """An ipset of the node: static members as assembled, or the selector of a runtime set."""

    name: str
    type: str
    members: tuple[str, ...]
    selector: Mapping[str, object] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class TraceNode:
    """What the trace knows of one node besides its rules text."""

    name: str
    pod_mtu: int
    link_mtu: int
    links: tuple[LinkFact, ...]
    routes: tuple[RouteFact, ...]
    pools: tuple[PoolFact, ...]
    ipsets: tuple[SetFact, ...]
    knows_api: bool  # its CNI plugin reads pods from the Kubernetes API (named ports known)

    def device_mtu(self, device: str) -> int:
        """Return the MTU of `device`: a tunnel link's, else the node's link MTU."""
        return next((link.mtu for link in self.links if link.name == device), self.link_mtu)

    def to_json(self) -> dict[str, Any]:
        """Return the facts as JSON-ready data."""
        return {
            "name": self.name,
            "pod_mtu": self.pod_mtu,
            "link_mtu": self.link_mtu,
            "links": [[link.name, link.mtu] for link in self.links],
            "routes": [[str(r.dst), r.type, _text(r.via), r.dev, r.onlink] for r in self.routes],
            "pools": [
                [p.name, str(p.cidr), p.encapsulation, p.mode, p.nat_outgoing] for p in self.pools
            ],
            "ipsets": [[s.name, s.type, list(s.members), s.selector] for s in self.ipsets],
            "knows_api": self.knows_api,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceNode:
        """Return the facts `to_json` wrote.

        Raises:
            KeyError, TypeError, ValueError: data this code did not write.
        """
        return cls(
            name=str(data["name"]),
            pod_mtu=int(data["pod_mtu"]),
            link_mtu=int(data["link_mtu"]),
            links=tuple(LinkFact(str(n), int(m)) for n, m in data["links"]),
            routes=tuple(
                RouteFact(ip_network(d), str(t), _address(v), dev, bool(o))
                for d, t, v, dev, o in data["routes"]
            ),
            pools=tuple(
                PoolFact(str(n), ip_network(c), str(e), str(m), bool(nat))
                for n, c, e, m, nat in data["pools"]
            ),
            ipsets=tuple(
                SetFact(str(n), str(t), tuple(str(x) for x in members), selector)
                for n, t, members, selector in data["ipsets"]
            ),
            knows_api=bool(data["knows_api"]),
        )


def _text(address: Address | None) -> str | None:
    return None if address is None else str(address)


def _address(text: str | None) -> Address | None:
    return None if text is None else ip_address(text)
