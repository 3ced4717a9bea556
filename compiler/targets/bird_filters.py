"""BIRD 2 text of BGP communities and filters (Calico's BGPFilter functions), for bird.conf.

Each filter becomes one function per family and direction that has rules, as confd's
BGPFilterBIRDFuncs writes them: the rules in order, each `if (<matches ANDed>) then { <operations>
accept; }` or `... then reject;`; a rule matching nothing decides nothing, and when no rule
decides, calicc's own default runs after. A session's filters:
  import { calicc_import_guard(); <filters>; <calicc's import: pool routes only> }
  export { calicc_communities(); <filters>; <calicc's export: this node's blocks, ...> }
The guard keeps calicc's safety first (never this node's own blocks nor a node subnet, whatever
a filter accepts); communities come before the filters, so that a filter accepting a route still
sends its communities and a community match sees them (Calico adds them after its filters).
Every function takes `bool is_same_as` (the session is iBGP), which guards the rules with a
`peer_type`, as Calico's do. Function texts are made once per build and family (lru_cache); a
node's file holds those its sessions call. Names: calicc_filter_<name>_<direction>_v<family>,
cut and hashed to BIRD's 64 characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from calicc.compiler.bgp_filters import advertisements
from calicc.compiler.filters import bird_string
from calicc.compiler.model.bgp_filters import (
    BgpFilter,
    FilterAction,
    FilterOperation,
    FilterRule,
    FilterSource,
    MatchOperator,
    PeerType,
    length_range,
)
from calicc.compiler.peering import Session
from calicc.compiler.plan import ClusterPlan
from calicc.contract import bird_filter_text as form

SYMBOL_MAX = 64
_PREFIX, _HASH = "calicc_filter_", 8
_OPERATOR = {
    MatchOperator.EQUAL: "=",
    MatchOperator.NOT_EQUAL: "!=",
    MatchOperator.IN: "~",
    MatchOperator.NOT_IN: "!~",
}
DIRECTIONS = ("import", "export")


@lru_cache(maxsize=1 << 12)
def symbol(name: str, direction: str, version: int) -> str:
    """Return the BIRD function name of filter `name` (a DNS-1123 label) in one direction.

    Examples:
        >>> symbol("no-long", "export", 4)
        'calicc_filter_no_long_export_v4'
    """
    tail = f"_{direction}_v{version}"
    base = name.replace("-", "_")  # a label has no "_": the mapping is one to one
    room = SYMBOL_MAX - len(_PREFIX) - len(tail)
    if len(base) > room:
        digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH]
        base = f"{base[: room - _HASH - 1]}_{digest}"
    return f"{_PREFIX}{base}{tail}"


def add_community(value: str) -> str:
    """Return the statement adding a literal community (aa:nn or aa:nn:mm)."""
    return form.ADD_COMMUNITY.format(attribute=form.attribute(value), parts=form.parts(value))


def _cidr_match(rule: FilterRule) -> list[str]:
    if rule.cidr is None or rule.match_operator is None:  # both or neither: the model
        return []
    op = _OPERATOR[rule.match_operator]
    if rule.prefix_length is None:
        return [form.NET.format(op=op, cidr=rule.cidr)]
    low, high = length_range(rule.cidr, rule.prefix_length)
    return [form.NET_RANGE.format(op=op, cidr=rule.cidr, low=low, high=high)]


def _matches(rule: FilterRule, names: dict[str, str]) -> list[str]:
    out = _cidr_match(rule)
    if rule.source == FilterSource.REMOTE_PEERS:
        out.append(form.SOURCE_BGP)
    if rule.interface is not None:
        out.append(form.IFNAME.format(glob=bird_string(rule.interface)))
    if rule.communities is not None:
        value = names.get(rule.communities.values[0], rule.communities.values[0])
        out.append(form.COMMUNITY.format(parts=form.parts(value), attribute=form.attribute(value)))
    if rule.as_path_prefix:
        out.append(form.AS_PATH.format(asns=" ".join(map(str, rule.as_path_prefix))))
    return out


def _operation(op: FilterOperation, names: dict[str, str]) -> list[str]:
    if op.add_community is not None:
        return [add_community(names.get(op.add_community.value, op.add_community.value))]
    if op.prepend_as_path is not None:  # BIRD prepends one at a time: last first
        return [form.PREPEND.format(asn=asn) for asn in reversed(op.prepend_as_path.prefix)]
    if op.set_local_preference is not None:
        return [form.LOCAL_PREF.format(value=op.set_local_preference.value)]
    return []  # the model sets exactly one of the three


def rule_statement(rule: FilterRule, names: dict[str, str]) -> str:
    """Return one rule as a BIRD statement (Calico's filterStatement and its peerType guard)."""
    body = [s for op in rule.operations for s in _operation(op, names)]
    body.append(form.ACCEPT if rule.action == FilterAction.ACCEPT else form.REJECT)
    matches = _matches(rule, names)
    text = " ".join(body)
    if matches:
        text = form.RULE.format(matches=form.MATCH_JOIN.join(matches), body=text)
    if rule.peer_type is None:
        return text
    negation = "" if rule.peer_type == PeerType.IBGP else "!"
    return form.PEER_GUARD.format(negation=negation, text=text)


def filter_functions(flt: BgpFilter, version: int, names: dict[str, str]) -> str:
    """Return the filter's functions for one family (one per direction with rules)."""
    out = []
    for direction in DIRECTIONS:
        rules: tuple[FilterRule, ...] = getattr(flt, f"{direction}_v{version}")
        if rules:
            head = form.COMMENT.format(name=flt.name, direction=direction, version=version)
            out.append(f"\n{head}")
            out.append(form.FUNCTION.format(symbol=symbol(flt.name, direction, version)) + "\n{")
            out += [form.RULE_INDENT + rule_statement(rule, names) for rule in rules]
            out.append("}")
    return "\n".join(out)


@lru_cache(maxsize=4)
def _cluster_texts(cluster: ClusterPlan, version: int) -> tuple[dict[str, str], str]:
    """Return every filter's functions and the communities function of one family, once."""
    bgp = cluster.spec.bgp
    names = {c.name: c.value for c in bgp.communities}
    functions = {f.name: filter_functions(f, version, names) for f in bgp.filters}
    suffix = "" if version == 4 else "_v6"  # noqa: PLR2004
    lines = [
        form.RULE_INDENT
        + form.COMMUNITIES_LINE.format(
            cidr=cidr, adds=" ".join(add_community(names.get(r, r)) for r in refs)
        )
        for cidr, refs in advertisements(cluster.spec, version)
    ]
    communities = (
        "\n# Communities on exported routes (bgp.prefix_advertisements, pools' communities).\n"
        f"function {form.COMMUNITIES.format(suffix=suffix)}()\n{{\n" + "\n".join(lines) + "\n}"
    )
    return functions, communities


def _guard(suffix: str, own_within: str, node_subnets: str) -> str:
    return (
        "\n\n# Imports through BGP filters: calicc's guards first, whatever a filter accepts.\n"
        f"function calicc_import_guard{suffix}()\n{{\n"
        f"  if net ~ {own_within} then reject;\n"
        f"  if net ~ {node_subnets} then reject;\n}}"
    )


def family_functions(
    cluster: ClusterPlan,
    sessions: Iterable[Session],
    version: int,
    own_within: str,
    node_subnets: str,
) -> str:
    """Return the functions a node's sessions of one family call ("" when they call none)."""
    sessions = tuple(sessions)
    used = tuple(sorted({n for s in sessions for n in (*s.import_filters, *s.export_filters)}))
    communities = any(s.communities for s in sessions)
    if not used and not communities:
        return ""
    text = _shared_text(cluster, version, used, communities)
    if any(s.import_filters for s in sessions):
        text += _guard("" if version == 4 else "_v6", own_within, node_subnets)  # noqa: PLR2004
    return text + "\n"


@lru_cache(maxsize=256)
def _shared_text(
    cluster: ClusterPlan, version: int, used: tuple[str, ...], communities: bool
) -> str:
    """Return the communities function and the `used` filters' functions (equal nodes share it)."""
    functions, communities_text = _cluster_texts(cluster, version)
    return "\n".join(([communities_text] if communities else []) + [functions[n] for n in used])


def _bool(value: bool) -> str:
    return "true" if value else "false"


def import_statement(session: Session, suffix: str) -> str | None:
    """Return the session's own import filter, or None to keep the template's."""
    if not session.import_filters:
        return None
    version = 6 if suffix else 4
    same = _bool(session.internal)
    calls = " ".join(
        form.CALL.format(symbol=symbol(n, "import", version), same=same)
        for n in session.import_filters
    )
    return (
        f"import filter {{ calicc_import_guard{suffix}(); {calls} "
        f"if calicc_pool_route{suffix}() then accept; reject; }};"
    )


def export_statement(session: Session, suffix: str, routes: str) -> str:
    """Return the session's export: `routes` (an expression), after communities and filters."""
    if not session.export_filters and not session.communities:
        return f"export where {routes};"
    version = 6 if suffix else 4
    calls = [f"{form.COMMUNITIES.format(suffix=suffix)}();"] if session.communities else []
    same = _bool(session.internal)
    calls += [
        form.CALL.format(symbol=symbol(n, "export", version), same=same)
        for n in session.export_filters
    ]
    return f"export filter {{ {' '.join(calls)} if {routes} then accept; reject; }};"
