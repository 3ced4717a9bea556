"""A top-of-rack router for the lab: BIRD speaking eBGP with the nodes that peer with it.

It runs where the cluster file puts it (the router namespace when its address is the router's
own address in a subnet), learns every pool prefix of its family from its rack, advertises them
to its other neighbors and installs them in its kernel, so unencapsulated pod traffic crosses
subnets. It learns the service CIDRs too, and the Local Services' /32s inside them
(compiler/bgp_services.py). A ToR at an IPv6 address speaks IPv6 sessions carrying the IPv6
pools (a cluster's IPv6 routes travel over IPv6 sessions, docs/ipv6.md); its 32-bit router
id is derived from its address. A ToR with both families is two speakers, one per peer_ip,
each its own BIRD. Each neighbor mirrors the node's session (its per-peer options): it expects
the AS the node presents (local_as_number) and runs GTSM when the node does (ttl_security);
the ToR always connects, so a passive node's session comes up too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

from calicc.compiler.bgp_services import service_entries
from calicc.compiler.peer_options import session_as
from calicc.compiler.peering import Session
from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import V4

Address = IPv4Address | IPv6Address


def sessions_to(plan: ClusterPlan, address: Address) -> Iterator[tuple[Address, int, Session]]:
    """Yield (node address, AS it presents, its session) of each node peering with `address`."""
    for node in plan.nodes:
        own = node.address if address.version == V4 else node.address_v6
        sessions = node.sessions if address.version == V4 else node.sessions_v6
        session = next((s for s in sessions if s.peer_ip == address), None)
        if own is not None and session is not None:
            yield own.ip, session_as(session.options, node.as_number), session


def tor_peers(plan: ClusterPlan, address: Address) -> tuple[tuple[Address, int], ...]:
    """Return (address, AS) of every node with a session to the speaker at `address`.

    The node's address is of the speaker's family; the AS is the one the node presents to the
    speaker (its local_as_number for that peer, else its own).
    """
    return tuple((ip, asn) for ip, asn, _ in sessions_to(plan, address))


def _neighbor(ip: Address, asn: int, session: Session) -> str:
    """Return the ToR's side of a node's session: the node's AS and GTSM when it asks."""
    name = "node_" + str(ip).replace(".", "_").replace(":", "_")
    hops = session.options.ttl_security if session.options else None
    gtsm = f" ttl security on; multihop {hops};" if hops else ""
    return f"protocol bgp {name} from rack {{ neighbor {ip} as {asn};{gtsm} }}"


def tor_router_id(address: Address) -> IPv4Address:
    """Return the ToR's router id: its IPv4 address, or one derived from its IPv6 address."""
    if isinstance(address, IPv4Address):
        return address
    digest = int.from_bytes(hashlib.sha256(address.packed).digest()[:4], "big")
    return IPv4Address(digest | 0x80000000)


def tor_config(plan: ClusterPlan, address: Address, as_number: int) -> str:
    """Return bird.conf for the ToR at `address` in AS `as_number` (its family's pools)."""
    family = "ipv4" if address.version == V4 else "ipv6"
    pools = ", ".join(
        f"{p.cidr}+" for p in plan.pools if not p.disabled and p.cidr.version == address.version
    )
    services = [n for n in service_entries(plan.spec.bgp) if n.version == address.version]
    pools += "".join(f", {n}+" for n in services)  # service CIDRs and the /32s inside them
    lines = [
        f"# Lab ToR {address} (AS {as_number}) for cluster {plan.name}; written by calicc lab.",
        f"router id {tor_router_id(address)};",
        "protocol device { scan time 10; }",
        f'protocol direct {{ {family}; interface "*"; }}',
        "protocol kernel { merge paths on; "
        f"{family} {{ import none; export where source = RTS_BGP; }}; }}",
        f"filter lab_pools {{ if net ~ [ {pools} ] then accept; reject; }}",
        "template bgp rack {",
        f"  local {address} as {as_number};",
        "  multihop; connect delay time 0; connect retry time 1; error wait time 1, 5;",
        f"  {family} {{ next hop keep; import filter lab_pools; export filter lab_pools; }};",
        "}",
    ]
    lines += [_neighbor(ip, asn, session) for ip, asn, session in sessions_to(plan, address)]
    return "\n".join(lines) + "\n"
