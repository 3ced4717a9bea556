"""Checks of BGP communities and filters that need the whole cluster (names, families, lengths).

A rule's CIDR must be of its list's family (export_v4 holds IPv4 CIDRs), its prefix lengths
inside that family and not crossed; every name (community, filter) must be defined, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.bgp_filters import HOST, FilterRule, length_range
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.pools import PoolPlan

Loc = tuple[str | int, ...]
LISTS = ("export_v4", "import_v4", "export_v6", "import_v6")


def _duplicates(names: Iterable[str], where: Loc, what: str, src: Source) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield src.problem(
                (*where, i, "name"), f"{what} {name!r} is defined twice; names are unique"
            )
        seen.add(name)


def check_names(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """Community and filter names are unique; a peer names only defined filters."""
    bgp = spec.bgp
    yield from _duplicates(
        (c.name for c in bgp.communities), ("bgp", "communities"), "community", src
    )
    yield from _duplicates((f.name for f in bgp.filters), ("bgp", "filters"), "filter", src)
    known = {f.name for f in bgp.filters}
    valid = ", ".join(sorted(known)) or "none is defined in bgp.filters"
    refs: list[tuple[Loc, str]] = [
        (("bgp", "global_filters", j), n) for j, n in enumerate(bgp.global_filters)
    ]
    for i, peer in enumerate(bgp.peers):
        refs += [(("bgp", "peers", i, "filters", j), n) for j, n in enumerate(peer.filters)]
    for loc, name in refs:
        if name not in known:
            yield src.problem(loc, f"no filter named {name!r} in bgp.filters (defined: {valid})")


def _rule_refs(rule: FilterRule, at: Loc) -> Iterator[tuple[Loc, str]]:
    if rule.communities is not None:
        yield (*at, "communities", "values", 0), rule.communities.values[0]
    for m, op in enumerate(rule.operations):
        if op.add_community is not None:
            yield (*at, "operations", m, "add_community", "value"), op.add_community.value


def _community_refs(spec: ClusterSpec) -> Iterator[tuple[Loc, str]]:
    bgp = spec.bgp
    for i, adv in enumerate(bgp.prefix_advertisements):
        for j, ref in enumerate(adv.communities):
            yield ("bgp", "prefix_advertisements", i, "communities", j), ref
    for i, pool in enumerate(spec.pools):
        for j, ref in enumerate(pool.communities):
            yield ("pools", i, "communities", j), ref
    for i, flt in enumerate(bgp.filters):
        for key in LISTS:
            for k, rule in enumerate(getattr(flt, key)):
                yield from _rule_refs(rule, ("bgp", "filters", i, key, k))


def check_communities(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A community given by name is one of bgp.communities."""
    known = {c.name for c in spec.bgp.communities}
    valid = ", ".join(sorted(known)) or "none is defined in bgp.communities"
    for loc, ref in _community_refs(spec):
        if ":" not in ref and ref not in known:
            yield src.problem(
                loc,
                f"no community named {ref!r} (defined: {valid}); or write the value, "
                "aa:nn or aa:nn:mm",
            )


def _rule_problems(rule: FilterRule, version: int, at: Loc, src: Source) -> Iterator[Problem]:
    key = str(at[-2])
    cidr = rule.cidr
    if cidr is not None and cidr.version != version:
        yield src.problem(
            (*at, "cidr"),
            f"{cidr} is an IPv{cidr.version} CIDR in {key}, a list of IPv{version} rules; "
            f"move the rule to {key[:-1]}{cidr.version}",
        )
        return
    if cidr is None or rule.prefix_length is None:
        return
    host = HOST[version]
    bounds = rule.prefix_length
    for field, value in (("min", bounds.min), ("max", bounds.max)):
        if value is not None and value > host:
            yield src.problem(
                (*at, "prefix_length", field),
                f"/{value} is longer than an IPv{version} prefix can be; use 0 to {host}",
            )
            return
    low, high = length_range(cidr, bounds)
    if low > high:
        yield src.problem(
            (*at, "prefix_length"),
            f"no route inside {cidr} is /{low} to /{high} long: max must be at least "
            f"{cidr.prefixlen} and at least min",
        )


def check_filter_rules(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Each rule's CIDR is of its list's family, with a possible prefix-length range."""
    for i, flt in enumerate(spec.bgp.filters):
        for key in LISTS:
            version = int(key[-1])
            for k, rule in enumerate(getattr(flt, key)):
                yield from _rule_problems(rule, version, ("bgp", "filters", i, key, k), src)


BGP_FILTER_CHECKS = (check_names, check_communities, check_filter_rules)
