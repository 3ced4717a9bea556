"""Which daemon plays each external BGP peer of a lab: GoBGP or a BIRD ToR (one home).

A peer in the cluster's own AS is an off-cluster route reflector, played by gobgpd with every
node its client. A peer in another AS is a top-of-rack router, played by BIRD (lab/tor.py),
unless the lab was asked to play it with GoBGP (`calicc lab up --gobgp PEER_IP`): then gobgpd
is a plain neighbor of each node that peers with it (eBGP, or iBGP without reflection), so
the lab can show what an off-cluster GoBGP speaker learns.
"""

from __future__ import annotations

from collections.abc import Collection

from calicc.compiler.model.spec import Bgp, BgpPeer


def played_by_gobgp(entry: BgpPeer, bgp: Bgp, gobgp_peers: Collection[str]) -> bool:
    """Return whether gobgpd plays the external peer `entry` (else a BIRD ToR does)."""
    return str(entry.peer_ip) in gobgp_peers or entry.as_number == bgp.as_number


def reflects(entry: BgpPeer, bgp: Bgp, gobgp_peers: Collection[str]) -> bool:
    """Return whether the gobgpd playing `entry` reflects routes between its node clients."""
    return entry.as_number == bgp.as_number and str(entry.peer_ip) not in gobgp_peers


def unknown_peers(bgp: Bgp, gobgp_peers: Collection[str]) -> list[str]:
    """Return the addresses asked to be played by GoBGP that are no peer of the cluster."""
    known = {str(p.peer_ip) for p in bgp.peers}
    return sorted(set(gobgp_peers) - known)
