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

from calicc.compiler.model.spec import Bgp, BgpPeer, ClusterSpec


class _Memo:
    """Answers computed once per cluster spec (held by identity: the spec is immutable)."""

    spec: ClusterSpec | None = None
    communities: dict[int, bool]
    filters: dict[tuple[tuple[str, ...], int], tuple[tuple[str, ...], tuple[str, ...]]]

    @classmethod
    def of(cls, spec: ClusterSpec) -> type[_Memo]:
        if cls.spec is not spec:
            cls.spec, cls.communities, cls.filters = spec, {}, {}
        return cls


def has_communities(spec: ClusterSpec, version: int) -> bool:
    """Return whether exported routes of IP `version` may get communities on this cluster."""
    memo = _Memo.of(spec)
    found = memo.communities.get(version)
    if found is None:
        found = memo.communities[version] = bool(advertisements(spec, version))
    return found


def advertisements(
    spec: ClusterSpec, version: int
) -> tuple[tuple[IPv4Network | IPv6Network, tuple[str, ...]], ...]:
    """Return (cidr, community refs) per prefix of `version`: pools' first, in file order."""
    pools = [(p.cidr, p.communities) for p in spec.pools if p.communities]
    adverts = [(a.cidr, a.communities) for a in spec.bgp.prefix_advertisements]
    return tuple((c, refs) for c, refs in (*pools, *adverts) if c.version == version)


def session_filters(
    spec: ClusterSpec, peer: BgpPeer, version: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the names of the filters a session with `peer` runs: (on import, on export).

    Only filters with rules for the session's family and direction are named.
    """
    if not peer.filters and not spec.bgp.global_filters:
        return (), ()
    memo = _Memo.of(spec)
    key = (peer.filters, version)
    found = memo.filters.get(key)
    if found is None:
        found = memo.filters[key] = _session_filters(spec.bgp, peer.filters, version)
    return found


def _session_filters(
    bgp: Bgp, own: tuple[str, ...], version: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    by_name = {f.name: f for f in bgp.filters}
    names = [n for n in dict.fromkeys((*own, *bgp.global_filters)) if n in by_name]
    imports = tuple(n for n in names if getattr(by_name[n], f"import_v{version}"))
    exports = tuple(n for n in names if getattr(by_name[n], f"export_v{version}"))
    return imports, exports
