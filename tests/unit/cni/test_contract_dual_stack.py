"""The bundle models take both families where docs/ipv6.md needs them, and IPv4 bytes stay."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Address, IPv6Interface, IPv6Network

import pytest
from pydantic import ValidationError

from calicc.contract.manifest import (
    BlockEntry,
    ClusterPool,
    FdbEntry,
    Link,
    Neighbor,
    NodeFile,
    NodeIdentity,
    Route,
)
from tests.conftest import EXAMPLES

DEMO = EXAMPLES / "policies-demo/rendered/nodes/node-1/node.json"


def test_an_ipv4_node_json_round_trips_to_its_bytes_without_ipv6_keys() -> None:
    text = DEMO.read_text()
    node = NodeFile.model_validate_json(text)
    dumped = node.model_dump(mode="json")
    assert "address_v6" not in dumped["node"]
    assert "autodetection_method_v6" not in dumped["node"]
    assert "tunnel_address_v6" not in dumped
    assert "vtep_mac_v6" not in dumped
    assert node.model_dump_json(indent=2) == NodeFile.model_validate(dumped).model_dump_json(
        indent=2
    )


def identity(**kw: object) -> NodeIdentity:
    return NodeIdentity.model_validate({"name": "n1", "as_number": 64512, **kw})


def test_a_node_has_an_ipv4_or_an_ipv6_address_or_both() -> None:
    assert identity(address_v6="fd00::a/64").address is None
    both = identity(address="10.0.0.1/24", address_v6="fd00::a/64")
    assert both.address == IPv4Interface("10.0.0.1/24")
    assert both.address_v6 == IPv6Interface("fd00::a/64")
    assert both.model_dump(mode="json")["address_v6"] == "fd00::a/64"
    with pytest.raises(ValidationError, match=r"address \(IPv4\), address_v6 \(IPv6\) or both"):
        identity()
    with pytest.raises(ValidationError, match="address_v6"):
        identity(address_v6="10.0.0.1/24")
    with pytest.raises(ValidationError, match="address"):
        identity(address="fd00::a/64")


def test_blocks_pools_routes_neighbours_and_fdb_take_ipv6() -> None:
    block = BlockEntry(cidr="fd00:10:244::/122", pool="default-ipv6-ippool")
    assert block.cidr == IPv6Network("fd00:10:244::/122")
    pool = ClusterPool.model_validate(
        {"name": "v6", "cidr": "fd00:10:244::/48", "encapsulation": "vxlan", "mode": "Always",
         "nat_outgoing": True}
    )  # fmt: skip
    assert pool.cidr.version == 6
    route = Route.model_validate(
        {"dst": "fd00:10:244::40/122", "type": "unicast", "via": "fd00::2"}
    )
    assert route.via == IPv6Address("fd00::2")
    assert Neighbor(dev="vxlan-v6.calico", address="fd00::1", lladdr="66:00:00:00:00:01")
    assert FdbEntry(dev="vxlan-v6.calico", lladdr="66:00:00:00:00:01", dst="fd00::2")


def test_a_route_of_mixed_families_is_refused() -> None:
    with pytest.raises(ValidationError, match="not of the family of dst"):
        Route.model_validate({"dst": "fd00::/122", "type": "unicast", "via": "10.0.0.2"})


def test_vxlan_v6_is_a_vxlan_link_with_ipv6_addresses_and_ipip_stays_ipv4() -> None:
    link = Link.model_validate(
        {"name": "vxlan-v6.calico", "kind": "vxlan", "mtu": 1430, "address": "fd00::1/128",
         "local": "fd00:1::5", "vni": 4096, "port": 4789}
    )  # fmt: skip
    assert link.local == IPv6Address("fd00:1::5")
    with pytest.raises(ValidationError, match="one family"):
        Link.model_validate(
            {"name": "vxlan-v6.calico", "kind": "vxlan", "mtu": 1430,
             "address": "fd00::1/128", "local": "10.0.0.5"}
        )  # fmt: skip
    with pytest.raises(ValidationError, match="ipip carries IPv4 only"):
        Link.model_validate({"name": "tunl0", "kind": "ipip", "mtu": 1480, "local": "fd00::5"})
