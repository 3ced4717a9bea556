"""`calicc import` of Calico's BGP extras: Service advertisement, communities, BGPFilters.

The base fixtures (tests/fixtures/calico_import/) are edited per test: the `default`
BGPConfiguration gains the Service CIDRs, communities and prefix advertisements, the BGPFilter
gains every rule form Calico has. The result must build, and what Calico advertised and filtered
must be in the bird.conf calicc then renders (the BGP lab tests prove the rendering itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.calico_import.run import import_calico, write_imported
from tests.support.hostile import run_calicc
from tests.unit.compiler.test_calico_import import CALICO, IPAM, assert_refused, extra

ADVERTISED = {
    "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
    "serviceExternalIPs": [{"cidr": "192.0.2.0/24"}],
    "serviceLoadBalancerIPs": [{"cidr": "198.51.100.0/24"}],
    "communities": [
        {"name": "rack-a", "value": "64512:100"},
        {"name": "big", "value": "64512:1:2"},
    ],
    "prefixAdvertisements": [
        {"cidr": "10.244.0.0/16", "communities": ["rack-a", "64512:300"]},
        {"cidr": "10.245.0.0/16", "communities": ["big"]},
    ],
}
RULES = {
    "exportV4": [
        {"action": "Reject", "matchOperator": "In", "cidr": "10.244.0.0/16",
         "prefixLength": {"min": 28, "max": 32}},
        {"action": "Accept", "source": "RemotePeers", "interface": "eth*"},
        {"action": "Accept", "communities": {"values": ["64512:100"]}, "asPathPrefix": [64512],
         "operations": [{"addCommunity": {"value": "64512:7"}},
                        {"prependASPath": {"prefix": [64512, 64512]}}]},
    ],
    "importV4": [{"action": "Reject", "matchOperator": "NotIn", "cidr": "10.0.0.0/8"}],
}  # fmt: skip


def edited(tmp_path: Path, edit: Any) -> Path:
    """Return a copy of the Calico fixture with `edit(kind, item)` applied to every item."""
    lists = yaml.safe_load(CALICO.read_text())
    for kind_list in lists:
        for item in kind_list["items"]:
            edit(item["kind"], item)
    return extra(tmp_path, "calico.yaml", yaml.safe_dump(lists, sort_keys=False))


def with_extras(kind: str, item: dict[str, Any]) -> None:
    if kind == "BGPConfiguration":
        item["spec"] |= ADVERTISED
    elif kind == "BGPFilter":
        item["spec"] = RULES


def test_service_cidrs_communities_and_filters_map_and_build(tmp_path: Path) -> None:
    result = import_calico([edited(tmp_path, with_extras), IPAM])
    bgp = yaml.safe_load(result.files["cluster.yaml"])["bgp"]
    assert bgp["service_cluster_ips"] == ["10.96.0.0/12"]
    assert bgp["service_external_ips"] == ["192.0.2.0/24"]
    assert bgp["service_loadbalancer_ips"] == ["198.51.100.0/24"]
    assert bgp["communities"] == ADVERTISED["communities"]
    assert bgp["prefix_advertisements"] == ADVERTISED["prefixAdvertisements"]
    (imported,) = bgp["filters"]
    assert imported["name"] == "export-pods-only"
    assert imported["export_v4"][0] == {
        "action": "Reject",
        "match_operator": "In",
        "cidr": "10.244.0.0/16",
        "prefix_length": {"min": 28, "max": 32},
    }
    assert imported["export_v4"][2]["operations"] == [
        {"add_community": {"value": "64512:7"}},
        {"prepend_as_path": {"prefix": [64512, 64512]}},
    ]
    assert imported["import_v4"] == [
        {"action": "Reject", "match_operator": "NotIn", "cidr": "10.0.0.0/8"}
    ]
    tor = next(p for p in bgp["peers"] if p["peer_ip"] == "10.30.1.1")
    assert tor["filters"] == ["export-pods-only"]
    assert not [n for n in result.notes if n.kind == "BGPFilter"]
    out = tmp_path / "cluster"
    write_imported(result, out)
    files = compile_cluster(load_cluster(out / "cluster.yaml")).files
    node3 = files["nodes/node-3/bird.conf"]
    for needle in ("198.51.100.0/24", "192.0.2.0/24", "(64512, 100)", "(64512, 1, 2)",
                   "bgp_path.prepend(64512)", "export-pods-only"):  # fmt: skip
        assert needle in node3, needle


def test_a_filter_calicc_cannot_express_is_left_out_whole_and_its_reference_dropped(
    tmp_path: Path,
) -> None:
    def with_priority(kind: str, item: dict[str, Any]) -> None:
        if kind == "BGPFilter":
            item["spec"] = {
                "exportV4": [
                    {"action": "Reject", "cidr": "10.244.0.0/16", "matchOperator": "In"},
                    {"action": "Accept", "operations": [{"setPriority": {"value": 512}}]},
                ]
            }

    result = import_calico([edited(tmp_path, with_priority), IPAM])
    bgp = yaml.safe_load(result.files["cluster.yaml"])["bgp"]
    assert "filters" not in bgp
    assert all("filters" not in p for p in bgp["peers"])
    notes = {(n.kind, n.name, n.field): n.reason for n in result.notes}
    why = notes[("BGPFilter", "export-pods-only", "spec.exportV4[1].operations.setPriority")]
    assert "kernel metric" in why
    assert "the filter is left out" in why
    dropped = notes[("BGPPeer", "node-3-tor", "spec.filters")]
    assert "BGPFilter export-pods-only was not imported" in dropped


def test_a_bad_community_is_blamed_on_the_bgpconfiguration(tmp_path: Path) -> None:
    def bad(kind: str, item: dict[str, Any]) -> None:
        if kind == "BGPConfiguration":
            item["spec"]["communities"] = [{"name": "x", "value": "70000:1"}]

    assert_refused(
        tmp_path,
        [edited(tmp_path, bad), IPAM],
        "BGPConfiguration default: spec.communities:",
        "70000",
    )


def test_a_bad_filter_rule_is_blamed_on_the_bgpfilter(tmp_path: Path) -> None:
    def bad(kind: str, item: dict[str, Any]) -> None:
        if kind == "BGPFilter":
            item["spec"] = {"exportV4": [{"action": "Drop", "cidr": "10.0.0.0/8",
                                          "matchOperator": "In"}]}  # fmt: skip

    assert_refused(
        tmp_path,
        [edited(tmp_path, bad), IPAM],
        "BGPFilter export-pods-only: spec.exportV4:",
        "Accept",
    )


def test_the_imported_fixture_passes_validate(tmp_path: Path) -> None:
    """bird -p of every node: node-3 has its own AS, so node-1 (a reflector) has no rr client."""
    out = tmp_path / "cluster"
    write_imported(import_calico([edited(tmp_path, with_extras), IPAM]), out)
    result = run_calicc(["validate", out / "cluster.yaml"], tmp_path)
    assert result.code == 0, result.stdout + result.stderr


def test_an_equal_rule_with_a_prefix_length_leaves_its_filter_out(tmp_path: Path) -> None:
    """BIRD never finds `net = [ set ]` equal: calicc refuses what Calico silently renders."""

    def equal_range(kind: str, item: dict[str, Any]) -> None:
        if kind == "BGPFilter":
            item["spec"] = {"exportV4": [{"action": "Reject", "cidr": "10.244.0.0/16",
                                          "matchOperator": "Equal",
                                          "prefixLength": {"min": 26}}]}  # fmt: skip

    result = import_calico([edited(tmp_path, equal_range), IPAM])
    assert "filters" not in yaml.safe_load(result.files["cluster.yaml"])["bgp"]
    notes = {(n.kind, n.field): n.reason for n in result.notes}
    why = notes[("BGPFilter", "spec.exportV4[0].prefixLength")]
    assert "never" in why
    assert "the filter is left out" in why
