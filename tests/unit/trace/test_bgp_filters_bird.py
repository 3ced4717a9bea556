"""trace/bgp_filters.py decides as real BIRD does, for every rule form calicc renders.

One BIRD in a namespace the test creates runs the functions compiler/targets/bird_filters.py
writes for a table of filters, each called from a static protocol's import (one per filter and
session type) on routes whose prefixes, interfaces (a blackhole's none, `lo`), AS paths and
communities vary; a route no rule decides falls through to `bgp_local_pref = 4242; accept;`.
What BIRD's table holds (absent: rejected; local_pref 4242: undecided; else accepted with the
rule's operations) must equal what the trace's evaluator, reading the same text, says. IPv4
and IPv6. `source = RTS_BGP` true needs a BGP route: tests/e2e/test_lab_trace_bgp_filters.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.model.bgp_filters import BgpFilter
from calicc.compiler.targets.bird_filters import filter_functions, symbol
from calicc.contract.names import V4
from calicc.lab.bird import bird_rib, birdc, parse_protocols, start_bird, stop_bird
from calicc.lab.netns import ns_add, ns_delete, ns_run
from calicc.lab.rib import RibPath
from calicc.lab.wait import poll
from calicc.trace.bgp_filters import Filters, Route
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

FALL_THROUGH = 4242
VIA_LO = 'via "lo"'
MARK = 4200000000  # a large community (MARK, protocol, 0) tells the protocols' routes apart
ROUTES: tuple[tuple[str, str, tuple[int, ...], tuple[str, ...]], ...] = (
    # prefix, "" (blackhole) or "lo", AS path, communities
    ("10.244.1.0/26", "", (), ()),
    ("10.244.0.0/16", "", (65000, 65021), ("65000:7",)),
    ("10.240.0.0/24", "lo", (), ("65000:1:2",)),
    ("10.244.1.0/24", "lo", (65000,), ("65000:7", "65000:1:2")),
    ("10.1.0.0/25", "", (65021, 65000, 7), ()),
    ("10.244.3.128/25", "", (65021,), ("65000:8",)),
    ("10.244.7.0/28", "lo", (), ()),
)
RULES: tuple[list[dict[str, Any]], ...] = (
    [{"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "Equal"}],
    [{"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "NotEqual"}],
    [{"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In"}],
    [{"action": "Accept", "cidr": "10.244.0.0/16", "match_operator": "NotIn"}],
    *(
        [{"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": op,
          "prefix_length": {"min": 25, "max": 26}}]
        for op in ("In", "NotIn")  # Equal, NotEqual take no prefix_length (the model)
    ),
    [{"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In",
      "prefix_length": {"min": 28}}],
    [{"action": "Reject", "cidr": "10.240.0.0/24", "match_operator": "In",
      "prefix_length": {"max": 24}}],
    [{"action": "Reject", "source": "RemotePeers"}],
    [{"action": "Reject", "interface": "l?"}],
    [{"action": "Reject", "interface": "eth*"}],
    [{"action": "Accept", "interface": "*",
      "operations": [{"set_local_preference": {"value": 7}}]}],
    [{"action": "Reject", "communities": {"values": ["65000:7"]}}],
    [{"action": "Reject", "communities": {"values": ["65000:1:2"]}}],
    [{"action": "Reject", "as_path_prefix": [65000]}],
    [{"action": "Reject", "as_path_prefix": [65021, 65000]}],
    [{"action": "Reject", "peer_type": "eBGP"}],
    [{"action": "Reject", "peer_type": "iBGP", "cidr": "10.244.0.0/16", "match_operator": "In"}],
    [
        {"action": "Accept", "cidr": "10.244.0.0/16", "match_operator": "In",
         "prefix_length": {"min": 24, "max": 24},
         "operations": [{"prepend_as_path": {"prefix": [64512, 64513]}},
                        {"add_community": {"value": "65000:999"}},
                        {"add_community": {"value": "65000:9:9"}},
                        {"set_local_preference": {"value": 300}}]},
        {"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In"},
        {"action": "Accept", "communities": {"values": ["65000:1:2"]}, "interface": "lo",
         "operations": [{"prepend_as_path": {"prefix": [1]}}]},
    ],
    [{"action": "Accept", "operations": [{"add_community": {"value": "65000:5"}}]}],
)  # fmt: skip
ROUTES6: tuple[tuple[str, str, tuple[int, ...], tuple[str, ...]], ...] = (
    ("fd00:200::/120", "", (), ()),
    ("fd00:200::/56", "lo", (65000,), ("65000:7",)),
    ("fd00:210::/48", "", (), ("65006:0:6",)),
    ("fd00:200:0:1::/64", "lo", (65021, 65000), ()),
)
RULES6: tuple[list[dict[str, Any]], ...] = (
    [{"action": "Reject", "cidr": "fd00:200::/56", "match_operator": "Equal"}],
    [{"action": "Reject", "cidr": "fd00:200::/56", "match_operator": "NotIn"}],
    [{"action": "Reject", "cidr": "fd00:200::/56", "match_operator": "In",
      "prefix_length": {"min": 64, "max": 119}}],
    [{"action": "Reject", "cidr": "fd00:200::/56", "match_operator": "NotIn",
      "prefix_length": {"min": 57}}],
    [{"action": "Accept", "interface": "lo", "as_path_prefix": [65021],
      "operations": [{"prepend_as_path": {"prefix": [64512]}}]},
     {"action": "Reject", "communities": {"values": ["65006:0:6"]}},
     {"action": "Reject", "peer_type": "iBGP"}],
)  # fmt: skip


def _filters() -> list[BgpFilter]:
    return [
        BgpFilter.model_validate({"name": f"f{i}", "export_v4": rules})
        for i, rules in enumerate(RULES)
    ] + [
        BgpFilter.model_validate({"name": f"g{i}", "export_v6": rules})
        for i, rules in enumerate(RULES6)
    ]


def _routes(version: int) -> tuple[tuple[str, str, tuple[int, ...], tuple[str, ...]], ...]:
    return ROUTES if version == V4 else ROUTES6


def _version(flt: BgpFilter) -> int:
    return V4 if flt.export_v4 else 6


def _tag(route: tuple[str, str, tuple[int, ...], tuple[str, ...]]) -> str:
    prefix, _, path, communities = route
    adds = [f"bgp_path.prepend({asn});" for asn in reversed(path)]
    for value in communities:
        name = "bgp_community" if value.count(":") == 1 else "bgp_large_community"
        adds.append(f"{name}.add(({value.replace(':', ', ')}));")
    return f"if net = {prefix} then {{ {' '.join(adds)} }}" if adds else ""


def _config(filters: list[BgpFilter]) -> tuple[str, list[tuple[str, bool, int]]]:
    """Return the BIRD config and, per static protocol, the function, is_same_as and family."""
    text = ["router id 10.0.0.1;", "protocol device {}"]
    text += [filter_functions(f, _version(f), {}) for f in filters]
    calls = [
        (symbol(f.name, "export", _version(f)), same, _version(f))
        for f in filters
        for same in (False, True)
    ]
    for index, (function, same, version) in enumerate(calls):
        routes = _routes(version)
        tags = " ".join(t for t in map(_tag, routes) if t)
        text.append(
            f"protocol static s{index} {{\n  ipv{version} {{ import filter {{ {tags} "
            f"bgp_large_community.add(({MARK}, {index}, 0)); {function}({str(same).lower()}); "
            f"bgp_local_pref = {FALL_THROUGH}; accept; }}; }};"
        )
        text += [f"  route {p} {VIA_LO if i else 'blackhole'};" for p, i, _, _ in routes]
        text.append("}")
    return "\n".join(text) + "\n", calls


@pytest.fixture(scope="module")
def bird_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[RibPath]]]:
    need_root()
    need_tool("bird", "birdc")
    tmp = tmp_path_factory.mktemp("filters")
    conf_text, _ = _config(_filters())
    conf = tmp / "bird.conf"
    conf.write_text(conf_text, encoding="utf-8")
    ns = f"calicc-t-{uuid.uuid4().hex[:6]}-flt"
    ns_add(ns)
    try:
        ns_run(ns, ["ip", "link", "set", "lo", "up"])
        daemon = start_bird(ns, conf, tmp / "run", "flt")
        try:
            yield conf_text, _settled(daemon.sock)
        finally:
            stop_bird(daemon)
    finally:
        ns_delete(ns)


def _settled(sock: Path) -> list[RibPath]:
    """Return BIRD's routes once every static protocol is up (it has imported its routes)."""

    def ready() -> bool | None:
        states = parse_protocols(birdc(sock, "show", "protocols")).values()
        return all(p["state"] == "up" for p in states) or None

    poll(ready, timeout=10, what="BIRD's static protocols up")
    return bird_rib(sock)


def _bird_view(paths: list[RibPath]) -> dict[tuple[int, str], tuple[Any, ...]]:
    out = {}
    for p in paths:
        mark = next(c for c in p.large_communities if c.startswith(f"{MARK}:"))
        index = int(mark.split(":")[1])
        communities = frozenset(p.communities) | (frozenset(p.large_communities) - {mark})
        out[(index, p.prefix)] = (p.local_pref, p.as_path, communities)
    return out


def test_every_rule_form_decides_as_bird_does(bird_table: tuple[str, list[RibPath]]) -> None:
    conf_text, paths = bird_table
    seen = _bird_view(paths)
    _, calls = _config(_filters())
    reader = Filters("test", conf_text)
    decided = {"accept": 0, "reject": 0, "none": 0}
    for index, (function, same, version) in enumerate(calls):
        for prefix, ifname, path, communities in _routes(version):
            route = Route(ip_network(prefix), False, ifname, frozenset(communities), path)
            decision = reader.run(((function, same),), route)
            if decision is None:
                want: tuple[Any, ...] | None = (FALL_THROUGH, path, frozenset(communities))
            elif decision.accept:
                after = decision.route
                want = (after.local_pref, after.path, after.communities)
            else:
                want = None
            decided["none" if decision is None else "accept" if want else "reject"] += 1
            got = seen.get((index, prefix))
            assert got == want, (function, same, prefix, decision and decision.text())
    assert min(decided.values()) > 10, decided  # every outcome is exercised
