"""How one node's BIRD learns another node's block: the BGP sessions of the rendered bird.conf.

Each `protocol bgp` of a node's bird.conf is a session: its neighbour and AS, whether it is a
route reflector client session (`rr client`), and whether it exports BGP-learned routes (its
export names `source = RTS_BGP`: a reflector's sessions do). Every node exports its own blocks
on every session. So a node S learns node D's block:
- straight from D, when S has a session with D's address (the node-to-node mesh, or a
  reflector and its client) and D has one back;
- through an in-cluster reflector R: S has a session with R, R learns the block (from D or from
  another reflector) and R's session with S exports BGP-learned routes;
- through an external peer E (a ToR, an off-cluster reflector): S and D both have a session
  with E. What E does is outside the tree: the trace assumes it passes the route on with its
  next hop unchanged (`next hop keep`, what a reflector does and what the lab's ToR does).
The next hop is D's address on every path, so the kernel route's device follows from D's
address alone (bird.conf's calicc_kernel_export; trace/route.py). A path through an external
peer crosses D's export and S's import on their sessions with it: their BGP filters, if any,
may reject the block there (`Speakers.rejected`, trace/bgp_filters.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from calicc.contract.ip_text import parse_address
from calicc.contract.nodes_table import NodeRow
from calicc.trace.bgp_filters import Decision, Filtering, Filters, Route, filtering

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
PROTOCOL = re.compile(r"^protocol bgp (\S+) from \S+ \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
NEIGHBOR = re.compile(r"^\s*neighbor (\S+) as (\d+);", re.MULTILINE)
DESCRIPTION = re.compile(r'^\s*description "([^"]*)";', re.MULTILINE)
LOCAL_AS = re.compile(r"^\s*local \S+ port \d+ as (\d+);", re.MULTILINE)
FILTERS, OWN_AS = " filter { ", "local as "  # a session with filters or communities, own AS
MAX_REFLECTOR_HOPS = 8  # reflectors between two nodes (a chain of clusters); more is a loop


@dataclass(frozen=True)
class Session:
    """One BGP session of a node, as its bird.conf states it."""

    name: str
    neighbor: Address
    peer_as: int
    description: str
    rr_client: bool
    reflects: bool  # exports routes learned over BGP (a reflector's session)
    filtering: Filtering | None = None  # BGP filters, communities, own local AS: if any


@dataclass(frozen=True)
class Learned:
    """One way a node learns a block: over `session`, through `through` (speakers in between)."""

    session: Session
    through: tuple[str, ...]
    far: Session | None = None  # through an external peer: the block owner's session with it

    def text(self) -> str:
        """Return e.g. `session Mesh_10_30_1_12 (node node-2 (node-to-node mesh))`."""
        hops = "".join(f" through {t}" for t in self.through)
        return f"over session {self.session.name} ({self.session.description}){hops}"


def sessions(bird_conf: str) -> tuple[Session, ...]:
    """Return the BGP sessions of a rendered bird.conf, in file order."""
    found = (_session(name, body) for name, body in PROTOCOL.findall(bird_conf))
    return tuple(s for s in found if s is not None)


def session_with(bird_conf: str, address: Address) -> Session | None:
    """Return the session of a rendered bird.conf with `address` (the last, as `sessions`).

    A reflector's bird.conf holds a session per client: this reads the one asked about, not a
    thousand. It finds the address as calicc writes it (canonical); None when it is not there
    as such (the caller then reads every session).
    """
    at = bird_conf.rfind(f"neighbor {address} as ")
    start = bird_conf.rfind("\nprotocol bgp ", 0, at) + 1 if at >= 0 else -1
    if start <= 0:
        return None
    block = PROTOCOL.match(bird_conf, start)
    if block is None or block.end() < at:
        return None
    found = _session(block.group(1), block.group(2))
    return found if found is not None and found.neighbor == address else None


def _session(name: str, body: str) -> Session | None:
    neighbor = NEIGHBOR.search(body)
    if neighbor is None:
        return None
    description = DESCRIPTION.search(body)
    address = parse_address(neighbor.group(1))
    return Session(
        name=name,
        neighbor=address,
        peer_as=int(neighbor.group(2)),
        description=description.group(1) if description else "",
        rr_client="rr client;" in body,
        reflects="RTS_BGP" in body,
        filtering=filtering(body, address.version) if FILTERS in body or OWN_AS in body else None,
    )


def local_as(bird_conf: str) -> int | None:
    """Return the node's own AS (the peer template's `local ... as N`), None without BGP."""
    found = LOCAL_AS.search(bird_conf)
    return int(found.group(1)) if found else None


class Speakers:
    """The sessions of every node a question needs, read from their bird.conf once each."""

    def __init__(
        self, bird_conf: Callable[[str], str], node_at: Callable[[Address], NodeRow | None]
    ) -> None:
        self._bird_conf = bird_conf
        self._node_at = node_at
        self._sessions: dict[
            str, tuple[dict[int, tuple[Session, ...]], dict[Address, Session]]
        ] = {}  # by node: its sessions per IP version, and by neighbour
        self._one: dict[tuple[str, Address], Session | None] = {}  # (node, neighbour) looked up
        self._filters: dict[str, Filters] = {}  # by node, read when a filter is first run

    def of(self, node: str, version: int) -> tuple[Session, ...]:
        """Return the node's sessions of IP `version`."""
        return self._read(node)[0][version]

    def peers_with(self, node: str, address: Address) -> Session | None:
        """Return the node's session with `address`, if it has one.

        Found in the node's bird.conf alone unless all its sessions were read already, or the
        address is not written there as calicc writes it (then all are read).
        """
        if node not in self._sessions:
            key = (node, address)
            if key not in self._one:
                self._one[key] = session_with(self._bird_conf(node), address)
            if self._one[key] is not None:
                return self._one[key]
        return self._read(node)[1].get(address)

    def _read(self, node: str) -> tuple[dict[int, tuple[Session, ...]], dict[Address, Session]]:
        if node not in self._sessions:
            found = sessions(self._bird_conf(node))
            by_family = {v: tuple(s for s in found if s.neighbor.version == v) for v in (4, 6)}
            self._sessions[node] = (by_family, {s.neighbor: s for s in found})
        return self._sessions[node]

    def learned(self, src: NodeRow, dst: NodeRow, version: int) -> tuple[Learned, ...]:
        """Return every way `src` learns `dst`'s blocks of IP `version` (empty: it does not)."""
        src_ip, dst_ip = _address(src, version), _address(dst, version)
        if src_ip is None or dst_ip is None:
            return ()
        found = []
        for session in self.of(src.name, version):
            if session.neighbor == dst_ip:
                if self.peers_with(dst.name, src_ip) is not None:
                    found.append(Learned(session, ()))
                continue
            if session.rr_client:  # src reflects to this client; a client reflects nothing back
                continue
            peer = self._node_at(session.neighbor)
            if peer is None:  # external: it has the route when dst peers with it too
                far = self.peers_with(dst.name, session.neighbor)
                if far is not None:
                    found.append(Learned(session, (f"external peer {session.neighbor}",), far))
                continue
            path = self._reflected(peer, src_ip, dst, version, {src.name})
            if path is not None:
                found.append(Learned(session, path))
        return tuple(found)

    def rejected(
        self, way: Learned, src: NodeRow, dst: NodeRow, block: Network, ifname: str
    ) -> Decision | None:
        """Return the filter rule that keeps dst's `block` off `way`, None when it passes.

        Only a path through an external peer crosses filters: dst's export to it, then src's
        import from it (`ifname`: src's interface toward dst's address), as bgp_filters.py says.
        """
        near, far = way.session, way.far
        imports = near.filtering.imports if near.filtering else ()
        if far is None or not ((far.filtering and far.filtering.exports) or imports):
            return None
        sent, decision = self.exported(dst.name, far, block)
        if sent is None:
            return decision
        path, own = sent.path, near.filtering.local_as if near.filtering else None
        if near.peer_as != (own or local_as(self._bird_conf(src.name))):
            path = (near.peer_as, *path)  # the external peer's, on eBGP
        got = Route(block, bgp=True, ifname=ifname, communities=sent.communities, path=path)
        decision = self._filters_of(src.name).run(imports, got)
        return decision if decision is not None and not decision.accept else None

    def exported(
        self, node: str, session: Session, prefix: Network
    ) -> tuple[Route | None, Decision | None]:
        """Return `prefix` (a blackhole in `node`'s BIRD) as `session` sends it, and its rule.

        The route is None when a filter rejects it; the rule None when no filter decided. The
        AS path is the one the peer receives: the node's AS first on eBGP.
        """
        route = Route(prefix, bgp=False, ifname="", communities=frozenset(), path=())
        owner, does = self._filters_of(node), session.filtering
        if does is not None and does.communities:
            route = owner.tag(route, prefix.version)
        decision = owner.run(does.exports, route) if does is not None else None
        if decision is not None:
            if not decision.accept:
                return None, decision
            route = decision.route
        own_as = (does and does.local_as) or local_as(self._bird_conf(node))
        if own_as is not None and session.peer_as != own_as:
            route = replace(route, path=(own_as, *route.path))  # eBGP
        return route, decision

    def _filters_of(self, node: str) -> Filters:
        if node not in self._filters:
            self._filters[node] = Filters(node, self._bird_conf(node))
        return self._filters[node]

    def _reflected(
        self, peer: NodeRow, to: Address, dst: NodeRow, version: int, seen: set[str]
    ) -> tuple[str, ...] | None:
        """Return the reflectors through which in-cluster `peer` passes dst's blocks to `to`."""
        if peer.name in seen or len(seen) > MAX_REFLECTOR_HOPS:
            return None
        back = self.peers_with(peer.name, to)
        if back is None or not back.reflects:
            return None
        dst_ip, peer_ip = _address(dst, version), _address(peer, version)
        here = (f"route reflector {peer.name}",)
        if (
            dst_ip is not None
            and peer_ip is not None
            and self.peers_with(peer.name, dst_ip) is not None
            and self.peers_with(dst.name, peer_ip) is not None
        ):
            return here
        for session in self.of(peer.name, version):
            if session.rr_client or peer_ip is None:  # clients reflect nothing to their reflector
                continue
            other = self._node_at(session.neighbor)
            if other is None or other.name == dst.name:
                continue
            further = self._reflected(other, peer_ip, dst, version, seen | {peer.name})
            if further is not None:
                return here + further
        return None


def _address(row: NodeRow, version: int) -> Address | None:
    return row.ip(version)
