"""Which BGP filters and communities a session carries (BIRD text: targets/bird_filters.py).

Scope, decided here once:
- a session with an external peer (bgp.peers) runs the peer's own `filters`, then
  `bgp.global_filters`, in list order (a name given twice runs once, first); in-cluster sessions
  (mesh, reflectors) run none, as Calico attaches BGPFilters through BGPPeers only, and a filter
  there could cut pod routes between the nodes;
- communities (bgp.prefix_advertisements, pools' `communities`) are added on export on every
  session of their family, in-cluster ones too, as Calico's calico_export_to_bgp_peers does.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from calicc.compiler.model.bgp_filters import BgpFilter
from calicc.compiler.model.spec import Bgp, BgpPeer, ClusterSpec


def has_communities(spec: ClusterSpec, version: int) -> bool:
    """Return whether exported routes of IP `version` may get communities on this cluster."""
    return any(a.cidr.version == version for a in spec.bgp.prefix_advertisements) or any(
        p.communities and p.cidr.version == version for p in spec.pools
    )


def advertisements(
    spec: ClusterSpec, version: int
) -> tuple[tuple[IPv4Network | IPv6Network, tuple[str, ...]], ...]:
    """Return (cidr, community refs) per prefix of `version`: pools' first, in file order."""
    pools = [(p.cidr, p.communities) for p in spec.pools if p.communities]
    adverts = [(a.cidr, a.communities) for a in spec.bgp.prefix_advertisements]
    return tuple((c, refs) for c, refs in (*pools, *adverts) if c.version == version)


def _rules(flt: BgpFilter, direction: str, version: int) -> bool:
    return bool(getattr(flt, f"{direction}_v{version}"))


def session_filters(
    bgp: Bgp, peer: BgpPeer, version: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the names of the filters a session with `peer` runs: (on import, on export).

    Only filters with rules for the session's family and direction are named.
    """
    if not peer.filters and not bgp.global_filters:
        return (), ()
    by_name = {f.name: f for f in bgp.filters}
    names = [n for n in dict.fromkeys((*peer.filters, *bgp.global_filters)) if n in by_name]
    return (
        tuple(n for n in names if _rules(by_name[n], "import", version)),
        tuple(n for n in names if _rules(by_name[n], "export", version)),
    )
