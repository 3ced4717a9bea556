"""What the BGP filters of rendered bird.conf files do to a node's block, as BIRD runs them.

A session with an external peer may call filter functions (compiler/targets/bird_filters.py):
  import filter { calicc_import_guard(); <filters>; <pool routes only> };
  export filter { calicc_communities(); <filters>; <this node's blocks, ...> };
This module reads those statements back with the formats they were written with
(contract/bird_filter_text.py) and runs them on a route the way BIRD does: the rules in order,
their matches ANDed, the first rule that matches accepts or rejects (after its operations) and
ends the whole filter; a filter without a deciding rule falls through to the next, and the last
to calicc's own rule. For another node's block that rule accepts: the export takes the node's
own blocks, the import every pool route, and the guard rejects only the importing node's own
blocks and the node subnets (no other node's block: check keeps pools off node subnets).

The route, at each end of a path through an external peer E (trace/bgp.py):
- exported by the block's owner D: its blackhole in BIRD (source static, no interface), an
  empty AS path, the communities of D's calicc_communities when its session calls it;
- imported by S: source BGP, S's interface toward the next hop (D's address; the underlay
  interface), the communities D sent (E keeps them), and the AS path D sent (D's own AS first
  when D's session with E is eBGP, after any prepend of D's filters) with E's AS in front when
  E's session with S is eBGP. E itself is assumed to filter nothing and add nothing else, as
  the trace assumes it passes routes on with their next hop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network, ip_network

from calicc.contract import bird_filter_text as form
from calicc.trace.errors import TraceError

Network = IPv4Network | IPv6Network
FILTER_CALL = re.compile(r"^\s*(import|export) filter \{ (.*) \};$", re.MULTILINE)
STATEMENT = re.compile(r"[^;]*;")
SESSION_LOCAL_AS = re.compile(r"^\s*local as (\d+);", re.MULTILINE)  # a peer's own local AS


@dataclass(frozen=True)
class Route:
    """A route as a filter sees it: the attributes calicc's filter rules look at or change."""

    net: Network
    bgp: bool  # source = RTS_BGP
    ifname: str  # "" for a blackhole
    communities: frozenset[str]  # "aa:nn" and "aa:nn:mm"
    path: tuple[int, ...]  # bgp_path, first AS first
    local_pref: int | None = None


Match = Callable[[Route], bool]


@dataclass(frozen=True)
class Rule:
    """One rule of a filter function, as its bird.conf line states it."""

    line: int  # 1-based, in the node's bird.conf
    text: str
    same_as: bool | None  # the peer_type guard: True iBGP only, False eBGP only, None either
    matches: tuple[Match, ...]
    operations: tuple[Callable[[Route], Route], ...]
    accept: bool

    def decides(self, route: Route, same_as: bool) -> bool:
        """Return whether this rule matches `route` on a session that is iBGP when `same_as`."""
        if self.same_as is not None and self.same_as != same_as:
            return False
        return all(m(route) for m in self.matches)

    def apply(self, route: Route) -> Route:
        """Return `route` after the rule's operations (BIRD runs them in order)."""
        for operation in self.operations:
            route = operation(route)
        return route


@dataclass(frozen=True)
class Function:
    """One filter's function of one direction and family (bgp.filters NAME: DIRECTION_vN)."""

    name: str
    direction: str
    version: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Decision:
    """A rule that decided a route: its filter, where it is, and the route it leaves."""

    node: str
    function: Function
    index: int  # the rule's index in the filter's list (cluster.yaml)
    route: Route

    @property
    def accept(self) -> bool:
        """Return whether the rule accepts."""
        return self.function.rules[self.index].accept

    def text(self) -> str:
        """Return e.g. `bgp.filters tor export_v4[1] (Reject) on node-2 (bird.conf:187)`."""
        f, rule = self.function, self.function.rules[self.index]
        verdict = "Accept" if rule.accept else "Reject"
        return (
            f"bgp.filters {f.name} {f.direction}_v{f.version}[{self.index}] ({verdict}) "
            f"on {self.node} (bird.conf:{rule.line}: {rule.text.strip()})"
        )


@dataclass(frozen=True)
class Filtering:
    """What a session's import and export do beyond calicc's defaults, as its body states it."""

    imports: tuple[tuple[str, bool], ...]  # filter functions called, with is_same_as
    exports: tuple[tuple[str, bool], ...]
    communities: bool  # its export adds calicc_communities
    local_as: int | None  # its own `local as` (a peer's local_as), else the node's AS


def filtering(body: str, version: int) -> Filtering | None:
    """Return a `protocol bgp` body's filtering; None when it has none (calicc's defaults).

    trace/bgp.py calls it only for a body with `" filter { "` or `"local as "` in it.
    """
    filters, own_as = " filter { " in body, "local as " in body
    if not filters and not own_as:
        return None
    calls = session_calls(body) if filters else {}
    found = SESSION_LOCAL_AS.search(body) if own_as else None
    return Filtering(
        imports=calls.get("import", ()),
        exports=calls.get("export", ()),
        communities=filters and calls_communities(body, version),
        local_as=int(found.group(1)) if found else None,
    )


def session_calls(body: str) -> dict[str, tuple[tuple[str, bool], ...]]:
    """Return a session's filter calls per direction: (function, is_same_as), in order."""
    out: dict[str, tuple[tuple[str, bool], ...]] = {}
    for direction, calls in FILTER_CALL.findall(body):
        found = pattern_calls(calls)
        if found:
            out[direction] = found
    return out


def pattern_calls(text: str) -> tuple[tuple[str, bool], ...]:
    """Return the filter calls (`symbol(true);`) of one import or export statement."""
    return tuple((m["symbol"], m["same"] == "true") for m in form.pattern(form.CALL).finditer(text))


def calls_communities(body: str, version: int) -> bool:
    """Return whether a session's export adds the communities of calicc_communities."""
    name = form.COMMUNITIES.format(suffix="" if version == 4 else "_v6")  # noqa: PLR2004
    return f"export filter {{ {name}();" in body


class Filters:
    """The filter functions of one node's bird.conf, each read once when first asked for."""

    def __init__(self, node: str, bird_conf: str) -> None:
        self.node = node
        self._text = bird_conf
        self._functions: dict[str, Function] = {}
        self._communities: dict[int, tuple[tuple[Network, frozenset[str]], ...]] = {}

    def function(self, symbol: str) -> Function:
        """Return the function `symbol` as the node's bird.conf defines it."""
        if symbol not in self._functions:
            self._functions[symbol] = self._read(symbol)
        return self._functions[symbol]

    def _read(self, symbol: str) -> Function:
        head = form.FUNCTION.format(symbol=symbol) + "\n{\n"
        at = self._text.find(head)
        start = self._text.rfind("\n", 0, max(at - 1, 0)) + 1
        comment = form.pattern(form.COMMENT).fullmatch(self._text[start : at - 1])
        if at < 0 or comment is None:
            raise TraceError(f"{self.node}'s bird.conf calls {symbol} but does not define it")
        end = self._text.find("\n}", at + len(head) - 1)
        first = self._text.count("\n", 0, at) + 3  # the first rule's line, after `{`
        lines = self._text[at + len(head) : end].split("\n")
        rules = tuple(self._rule(text, first + i) for i, text in enumerate(lines))
        return Function(comment["name"], comment["direction"], int(comment["version"]), rules)

    def _rule(self, text: str, line: int) -> Rule:
        try:
            return parse_rule(text, line)
        except ValueError as err:
            raise TraceError(f"{self.node}'s bird.conf:{line}: {err}") from None

    def communities(self, version: int) -> tuple[tuple[Network, frozenset[str]], ...]:
        """Return calicc_communities' prefixes and the communities each adds."""
        if version not in self._communities:
            name = form.COMMUNITIES.format(suffix="" if version == 4 else "_v6")  # noqa: PLR2004
            at = self._text.find(f"function {name}()\n{{\n")
            if at < 0:
                raise TraceError(f"{self.node}'s bird.conf calls {name} but does not define it")
            end = self._text.find("\n}", at)
            found = []
            line_form = form.pattern(form.COMMUNITIES_LINE)
            add_form = form.pattern(form.ADD_COMMUNITY)
            for text in filter(None, self._text[at:end].split("\n")[2:]):
                match = line_form.fullmatch(text.strip())
                if match is None:
                    raise TraceError(f"{self.node}'s bird.conf {name}: not calicc's: {text}")
                adds = frozenset(form.community(a["parts"]) for a in add_form.finditer(text))
                found.append((ip_network(match["cidr"]), adds))
            self._communities[version] = tuple(found)
        return self._communities[version]

    def tag(self, route: Route, version: int) -> Route:
        """Return `route` with the communities calicc_communities adds to it."""
        adds = {c for cidr, values in self.communities(version) if _within(route.net, cidr)
                for c in values}  # fmt: skip
        return replace(route, communities=route.communities | adds)

    def run(self, calls: tuple[tuple[str, bool], ...], route: Route) -> Decision | None:
        """Return the rule that decides `route` through `calls`, None when none does."""
        for symbol, same_as in calls:
            function = self.function(symbol)
            for index, rule in enumerate(function.rules):
                if rule.decides(route, same_as):
                    return Decision(self.node, function, index, rule.apply(route))
        return None


def parse_rule(text: str, line: int) -> Rule:
    """Return the rule of one function line (as bird_filters.rule_statement writes it).

    Examples:
        >>> rule = parse_rule("  if (net ~ 10.0.0.0/8) then { bgp_path.prepend(7); accept; }", 9)
        >>> net = ip_network("10.1.0.0/24")
        >>> rule.accept, rule.decides(Route(net, False, "", frozenset(), ()), False)
        (True, True)
        >>> rule.apply(Route(net, False, "", frozenset(), ())).path
        (7,)
    """
    statement = text.strip()
    same_as = None
    guard = form.pattern(form.PEER_GUARD).fullmatch(statement)
    if guard is not None:
        same_as, statement = guard["negation"] == "", guard["text"]
    rule = form.pattern(form.RULE).fullmatch(statement)
    matches = rule["matches"].split(form.MATCH_JOIN) if rule is not None else []
    body = STATEMENT.findall(rule["body"] if rule is not None else statement)
    body = [b.strip() for b in body]
    if not body or body[-1] not in (form.ACCEPT, form.REJECT):
        raise ValueError(f"not a rule calicc writes (no accept or reject at its end): {text}")
    return Rule(
        line, text, same_as, tuple(_match(m) for m in matches),
        tuple(_operation(o) for o in body[:-1]), body[-1] == form.ACCEPT,
    )  # fmt: skip


def _within(net: Network, cidr: Network) -> bool:
    """BIRD's `net ~ cidr`: net is cidr or inside it."""
    return (
        net.version == cidr.version
        and net.prefixlen >= cidr.prefixlen
        and (net.supernet(new_prefix=cidr.prefixlen) == cidr)
    )


def _in_range(net: Network, cidr: Network, low: int, high: int) -> bool:
    """BIRD's `net ~ [ cidr{low,high} ]` (calicc writes low >= the CIDR's length)."""
    return low <= net.prefixlen <= high and _within(net, cidr)


def _glob(value: str) -> re.Pattern[str]:
    """BIRD's string pattern: `*` any run of characters, `?` one character."""
    text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(text, re.DOTALL)


def _net_match(op: str, test: Callable[[Network], bool], to_set: bool) -> Match:
    if op in ("=", "!=") and to_set:  # BIRD: a net never equals a prefix set (other types)
        return (lambda r: False) if op == "=" else (lambda r: True)
    if op in ("=", "~"):
        return lambda r: test(r.net)
    return lambda r: not test(r.net)


def _match(text: str) -> Match:
    if (m := form.pattern(form.NET).fullmatch(text)) is not None:
        cidr = ip_network(m["cidr"])
        same = m["op"] in ("=", "!=")
        test = (lambda n: n == cidr) if same else (lambda n: _within(n, cidr))
        return _net_match(m["op"], test, to_set=False)
    if (m := form.pattern(form.NET_RANGE).fullmatch(text)) is not None:
        cidr, low, high = ip_network(m["cidr"]), int(m["low"]), int(m["high"])
        return _net_match(m["op"], lambda n: _in_range(n, cidr, low, high), to_set=True)
    if text == form.SOURCE_BGP:
        return lambda r: r.bgp
    if (m := form.pattern(form.IFNAME).fullmatch(text)) is not None:
        glob = _glob(m["glob"][1:-1])
        return lambda r: glob.fullmatch(r.ifname) is not None
    if (m := form.pattern(form.COMMUNITY).fullmatch(text)) is not None:
        value = form.community(m["parts"])
        if form.attribute(value) != m["attribute"]:
            raise ValueError(f"community {value} is not a {m['attribute']}: {text}")
        return lambda r: value in r.communities
    if (m := form.pattern(form.AS_PATH).fullmatch(text)) is not None:
        prefix = tuple(int(a) for a in m["asns"].split())
        return lambda r: r.path[: len(prefix)] == prefix
    raise ValueError(f"not a match calicc writes: {text}")


def _operation(text: str) -> Callable[[Route], Route]:
    if (m := form.pattern(form.ADD_COMMUNITY).fullmatch(text)) is not None:
        value = form.community(m["parts"])
        return lambda r: replace(r, communities=r.communities | {value})
    if (m := form.pattern(form.PREPEND).fullmatch(text)) is not None:
        asn = int(m["asn"])
        return lambda r: replace(r, path=(asn, *r.path))
    if (m := form.pattern(form.LOCAL_PREF).fullmatch(text)) is not None:
        pref = int(m["value"])
        return lambda r: replace(r, local_pref=pref)
    raise ValueError(f"not an operation calicc writes: {text}")
