"""The trace's routing through an external peer honours the BGP filters of bird.conf
(trace/bgp.py `Speakers.rejected`, trace/bgp_filters.py), on tor-ebgp (one AS per node, every
node's eBGP ToR 10.60.1.254 in AS 65000) with filters on the ToR peer: a block the owner's
export or the importer's import rejects is unroutable and the answer names the rule and its
bird.conf line; a block the filters accept is traced exactly as without them."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from calicc.trace.bgp import Speakers
from calicc.trace.cli import app
from calicc.trace.route import Forward, forward
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES
from tests.support.clusters import built_example

DEFAULT, RACK2 = IPv4Network("10.244.0.0/16"), IPv4Network("10.240.0.0/24")


def _built(tmp_path: Path, filters: list[dict[str, Any]], **bgp: Any) -> TreeView:
    def edit(data: dict[str, Any]) -> None:
        data["bgp"].update(bgp, filters=filters)
        data["bgp"]["peers"][0]["filters"] = [f["name"] for f in filters]

    built_example(tmp_path, "tor-ebgp", edit)
    return TreeView.open(tmp_path / "rendered")


def _block(view: TreeView, node: str, pool: IPv4Network) -> IPv4Network:
    return next(
        c for _, c in view.row(node).blocks if isinstance(c, IPv4Network) and c.subnet_of(pool)
    )


def _route(view: TreeView, src: str, dst: str, pool: IPv4Network) -> Forward:
    block = _block(view, dst, pool)
    return forward(view, Speakers(view.bird_conf, view.node_at), view.row(src), block[1], None)


def _named_line(view: TreeView, node: str, found: Forward) -> str:
    """Return the bird.conf line the answer names (`bird.conf:N: text`), checked to hold it."""
    at = found.why.index(f"on {node} (bird.conf:") + len(f"on {node} (bird.conf:")
    number, text = found.why[at:].split(": ", 1)
    line = view.bird_conf(node).split("\n")[int(number) - 1]
    assert text.startswith(line.strip())
    return line.strip()


def test_an_export_filter_rejecting_the_block_makes_it_unroutable(tmp_path: Path) -> None:
    view = _built(tmp_path, [{"name": "tor", "export_v4": [
        {"action": "Reject", "source": "RemotePeers"},  # a static block is not from a peer
        {"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In",
         "prefix_length": {"min": 26}},
    ]}])  # fmt: skip
    found = _route(view, "rack1-node1", "rack2-node1", DEFAULT)
    assert (found.kind, found.installed_by, found.learned) == ("unroutable", "nobody", ())
    assert "through external peer 10.60.1.254 it is rejected by " in found.why
    assert "bgp.filters tor export_v4[1] (Reject) on rack2-node1" in found.why
    assert _named_line(view, "rack2-node1", found) == (
        "if (net ~ [ 10.244.0.0/16{26,32} ]) then { reject; }"
    )
    accepted = _route(view, "rack1-node1", "rack2-node1", RACK2)  # outside the filter's CIDR
    plain = TreeView.open(EXAMPLES / "tor-ebgp" / "rendered")
    before = _route(plain, "rack1-node1", "rack2-node1", RACK2)
    assert (accepted.kind, accepted.route, accepted.installed_by, accepted.why) == (
        before.kind, before.route, before.installed_by, before.why,
    )  # fmt: skip


def test_an_import_filter_sees_the_peers_as_path(tmp_path: Path) -> None:
    """At rack1-node1 the path from rack2-node1 is (65000 65021): the ToR's AS, then the owner's
    (one AS per node, eBGP both ways); a prepend by the owner's export filter comes after."""
    view = _built(tmp_path, [{
        "name": "tor",
        "import_v4": [{"action": "Reject", "as_path_prefix": [65000, 65021]},
                      {"action": "Reject", "as_path_prefix": [65000, 65022, 64999]}],
        "export_v4": [{"action": "Accept", "cidr": "10.240.0.0/24", "match_operator": "In",
                       "operations": [{"prepend_as_path": {"prefix": [64999]}}]}],
    }])  # fmt: skip
    from_21 = _route(view, "rack1-node1", "rack2-node1", DEFAULT)
    assert from_21.kind == "unroutable"
    assert "bgp.filters tor import_v4[0] (Reject) on rack1-node1" in from_21.why
    assert _named_line(view, "rack1-node1", from_21) == (
        "if (bgp_path ~ [= 65000 65021 * =]) then { reject; }"
    )
    assert _route(view, "rack1-node1", "rack2-node2", DEFAULT).kind == "bgp"  # (65000 65022)
    prepended = _route(view, "rack1-node1", "rack2-node2", RACK2)  # (65000 65022 64999)
    assert "bgp.filters tor import_v4[1] (Reject) on rack1-node1" in prepended.why


def test_filters_see_the_owners_communities_and_the_source(tmp_path: Path) -> None:
    view = _built(
        tmp_path,
        [{"name": "tor", "import_v4": [
            {"action": "Accept", "cidr": "10.244.0.0/16", "match_operator": "In"},
            {"action": "Reject", "communities": {"values": ["65100:1:2"]}},
            {"action": "Reject", "source": "RemotePeers", "interface": "eth?"},
        ]}],
        communities=[{"name": "r2", "value": "65100:2"}],
        prefix_advertisements=[{"cidr": "10.240.0.0/24", "communities": ["r2", "65100:1:2"]}],
    )  # fmt: skip
    assert _route(view, "rack1-node1", "rack2-node1", DEFAULT).kind == "bgp"  # rule 0 accepts
    tagged = _route(view, "rack1-node1", "rack2-node1", RACK2)
    assert "bgp.filters tor import_v4[1] (Reject) on rack1-node1" in tagged.why


def test_an_imported_route_is_from_bgp_over_the_underlay(tmp_path: Path) -> None:
    view = _built(tmp_path, [{"name": "tor", "import_v4": [
        {"action": "Accept", "interface": "lo"},
        {"action": "Reject", "source": "RemotePeers", "interface": "eth?"},
    ]}])  # fmt: skip
    found = _route(view, "rack2-node2", "rack1-node2", DEFAULT)
    assert "bgp.filters tor import_v4[1] (Reject) on rack2-node2" in found.why


def test_the_command_names_the_rule_and_exits_1(tmp_path: Path) -> None:
    view = _built(tmp_path, [{"name": "tor", "export_v4": [
        {"action": "Reject", "cidr": "10.244.0.0/16", "match_operator": "In"},
    ]}])  # fmt: skip
    block = _block(view, "rack2-node1", DEFAULT)
    args = ["rack1-node1", str(block[1]), "--tree", str(tmp_path / "rendered")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "bgp.filters tor export_v4[0] (Reject) on rack2-node1 (bird.conf:" in result.output
