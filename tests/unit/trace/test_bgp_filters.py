"""trace/bgp_filters.py reads back exactly what compiler/targets/bird_filters.py writes
(contract/bird_filter_text.py's formats both ways), refuses what it does not recognise naming
the node and bird.conf line, and reads nothing for sessions without filters."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from calicc.compiler.model.bgp_filters import BgpFilter, FilterAction, PeerType
from calicc.compiler.targets.bird_filters import rule_statement
from calicc.trace.bgp import sessions
from calicc.trace.bgp_filters import Filters, Route, parse_rule
from calicc.trace.errors import TraceError
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES
from tests.support.clusters import built_example
from tests.unit.trace.test_bgp_filters_bird import RULES, RULES6

MATCH_FIELDS = ("cidr", "source", "interface", "communities", "as_path_prefix")


@pytest.mark.parametrize("rules", [*RULES, *RULES6])
def test_every_rendered_rule_reads_back(rules: list[dict[str, object]]) -> None:
    key = "export_v6" if any(":" in str(r.get("cidr", "")) for r in rules) else "export_v4"
    flt = BgpFilter.model_validate({"name": "x", key: rules})
    for number, rule in enumerate(getattr(flt, key)):
        read = parse_rule(f"  {rule_statement(rule, {})}", number)
        assert read.accept == (rule.action == FilterAction.ACCEPT)
        peer = None if rule.peer_type is None else rule.peer_type == PeerType.IBGP
        assert read.same_as == peer
        assert len(read.matches) == sum(bool(getattr(rule, f)) for f in MATCH_FIELDS)
        steps = sum(len(o.prepend_as_path.prefix) if o.prepend_as_path else 1
                    for o in rule.operations)  # fmt: skip
        assert len(read.operations) == steps


@pytest.mark.parametrize(
    "text",
    [
        "  if (net ~ 10.0.0.0/8) then { reject }",  # no `;`
        "  if (net ~ 10.0.0.0/8) then { print 1; accept; }",  # not an operation calicc writes
        "  if (bgp_med > 5) then { reject; }",  # not a match calicc writes
        "  if (net ~ 10.0.0.0/8) then { bgp_path.prepend(1); }",  # no verdict
    ],
)
def test_a_statement_calicc_does_not_write_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="calicc writes"):
        parse_rule(text, 1)


def _tree(tmp_path: Path) -> TreeView:
    def edit(data: dict[str, object]) -> None:
        bgp = data["bgp"]
        assert isinstance(bgp, dict)
        bgp["filters"] = [{"name": "tor", "export_v4": [
            {"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In"},
        ]}]  # fmt: skip
        bgp["peers"][0]["filters"] = ["tor"]

    built_example(tmp_path, "tor-ebgp", edit)
    return TreeView.open(tmp_path / "rendered")


def test_an_edited_rule_is_an_error_naming_node_and_line(tmp_path: Path) -> None:
    text = _tree(tmp_path).bird_conf("rack1-node1")
    line = "  if (net ~ 10.244.0.0/16) then { reject; }"
    number = text.split("\n").index(line) + 1
    edited = Filters("rack1-node1", text.replace(line, "  if (net ~ 10.244.0.0/16) then { }"))
    route = Route(ip_network("10.244.0.0/26"), False, "", frozenset(), ())
    with pytest.raises(TraceError, match=f"rack1-node1's bird.conf:{number}: not a rule"):
        edited.run((("calicc_filter_tor_export_v4", False),), route)
    intact = Filters("rack1-node1", text).run((("calicc_filter_tor_export_v4", False),), route)
    assert intact is not None
    assert (intact.accept, intact.index, intact.function.rules[0].line) == (False, 0, number)
    with pytest.raises(TraceError, match="calls calicc_filter_gone_export_v4 but does not"):
        Filters("rack1-node1", text).run((("calicc_filter_gone_export_v4", False),), route)


@pytest.mark.parametrize("example", ["tor-ebgp", "rr-inline", "offcluster-rr", "ipv6-rr"])
def test_sessions_without_filters_carry_no_filtering(example: str) -> None:
    tree = EXAMPLES / example / "rendered" / "nodes"
    found = [s for conf in sorted(tree.glob("*/bird.conf")) for s in sessions(conf.read_text())]
    assert found
    assert all(s.filtering is None for s in found)


def test_a_session_with_filters_states_its_calls(tmp_path: Path) -> None:
    (session,) = sessions(_tree(tmp_path).bird_conf("rack2-node1"))
    assert session.filtering is not None
    assert session.filtering.exports == (("calicc_filter_tor_export_v4", False),)
    assert (session.filtering.imports, session.filtering.communities) == ((), False)


def test_communities_are_read_per_prefix_and_must_be_defined(tmp_path: Path) -> None:
    def edit(data: dict[str, object]) -> None:
        bgp = data["bgp"]
        assert isinstance(bgp, dict)
        bgp["prefix_advertisements"] = [
            {"cidr": "10.240.0.0/24", "communities": ["65100:2", "65100:1:2"]},
            {"cidr": "10.240.0.0/25", "communities": ["65100:3"]},
        ]

    built_example(tmp_path, "tor-ebgp", edit)
    text = TreeView.open(tmp_path / "rendered").bird_conf("rack2-node1")
    tagged = Filters("rack2-node1", text).tag(
        Route(ip_network("10.240.0.64/26"), False, "", frozenset(), ()), 4
    )
    assert tagged.communities == {"65100:2", "65100:1:2", "65100:3"}
    with pytest.raises(TraceError, match="calls calicc_communities_v6 but does not define it"):
        Filters("rack2-node1", text).communities(6)
