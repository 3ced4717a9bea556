"""`calicc import` of Calico's serviceLoadBalancerAggregation: Disabled maps, the default is
left out, a value Calico refuses is blamed on the BGPConfiguration's field; nothing reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.calico_import.run import import_calico
from tests.unit.compiler.test_calico_import import IPAM, assert_refused
from tests.unit.compiler.test_calico_import_bgp import edited


def aggregation(value: str) -> Any:
    def edit(kind: str, item: dict[str, Any]) -> None:
        if kind == "BGPConfiguration" and item["metadata"]["name"] == "default":
            item["spec"]["serviceLoadBalancerIPs"] = [{"cidr": "198.18.20.0/24"}]
            item["spec"]["serviceLoadBalancerAggregation"] = value

    return edit


def test_disabled_aggregation_maps_and_the_default_is_left_out(tmp_path: Path) -> None:
    result = import_calico([edited(tmp_path, aggregation("Disabled")), IPAM])
    bgp = yaml.safe_load(result.files["cluster.yaml"])["bgp"]
    assert bgp["service_loadbalancer_aggregation"] == "Disabled"
    assert not [n for n in result.notes if "serviceLoadBalancerAggregation" in n.field]
    default = import_calico([edited(tmp_path, aggregation("Enabled")), IPAM])
    assert "service_loadbalancer_aggregation" not in default.files["cluster.yaml"]


def test_unknown_aggregation_is_blamed_on_the_calico_field(tmp_path: Path) -> None:
    bad = edited(tmp_path, aggregation("Sometimes"))
    assert_refused(tmp_path, [bad, IPAM], "spec.serviceLoadBalancerAggregation", "'Disabled'")
