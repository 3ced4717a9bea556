"""IPv6 endpoint policy on the node (issue 13): ip6tables endpoint chains with neighbour
discovery before policy, each address in the sets of its family (records, the Kubernetes API,
named ports), and the CNI plugin's restores run side by side."""

from __future__ import annotations

import time
from ipaddress import ip_network
from types import SimpleNamespace
from typing import Any

import pytest

from calicc.agent.cni import live_filter
from calicc.agent.cni.endpoint_policy import (
    EndpointRecord,
    _run_together,
    rules_for_all,
)
from calicc.agent.cni.errors import CniError
from calicc.agent.endpoints import runtime_members
from calicc.agent.membership import cluster_members, pods_from_list
from calicc.contract.endpoint import (
    PodPolicies,
    endpoint_rules,
    named_port_members,
    set_members,
)
from calicc.contract.manifest import Ipset
from calicc.contract.syntax import CLEAR_MARKS

SELECTOR = {"namespace": "shop", "podSelector": {"matchLabels": {"app": "api"}}}
PORT = {"namedPort": "http", "protocol": "TCP"}
SETS = (
    Ipset(name="cali40s:api", type="hash:ip", selector=SELECTOR),
    Ipset(name="cali60s:api", type="hash:ip", selector=SELECTOR),
    Ipset(name="cali40n:http", type="hash:ip,port", selector=PORT),
    Ipset(name="cali60n:http", type="hash:ip,port", selector=PORT),
)
MANIFEST: Any = SimpleNamespace(ipsets=SETS, policies=())
IFACE = "cali0123456789a"


def nd_types(rules: tuple[str, ...], chain: str) -> list[int]:
    return [
        int(r.split("--icmpv6-type ")[1].split()[0])
        for r in rules
        if r.startswith(f"-A {chain} ") and "--icmpv6-type" in r
    ]


def test_ipv6_endpoint_chains_let_neighbour_discovery_through_before_policy() -> None:
    policies = PodPolicies(ingress=(("cali-pi-x", "shop/x"),), egress=(("cali-po-x", "shop/x"),))
    v6 = endpoint_rules(IFACE, policies, family=6)
    v4 = endpoint_rules(IFACE, policies)
    fw, tw = v6.chains
    assert nd_types(v6.rules, tw) == [130, 131, 132, 133, 134, 135, 136]
    assert nd_types(v6.rules, fw) == [130, 131, 132, 133, 135, 136], "no RA from a pod"
    for chain in (fw, tw):
        mine = [r for r in v6.rules if r.startswith(f"-A {chain} ")]
        first_nd = next(i for i, r in enumerate(mine) if "icmpv6" in r)
        clear = next(i for i, r in enumerate(mine) if r.endswith(CLEAR_MARKS))
        deny = next(i for i, r in enumerate(mine) if r.endswith("-j DROP") and "default" in r)
        assert "ESTABLISHED" in mine[0]
        assert "INVALID" in mine[1]
        assert first_nd < clear < deny, "ND is accepted before the policy and its default deny"
    assert "icmp" not in " ".join(v4.rules)
    stripped = [r for r in v6.rules if "icmpv6" not in r]
    assert stripped == list(v4.rules), "otherwise the same chains in both families"
    assert v6.dispatch == v4.dispatch


def test_each_address_joins_the_sets_of_its_family() -> None:
    assert set_members(["cali40s:api", "cali60s:api"], ["10.244.0.5", "fd00::5"]) == (
        ("cali40s:api", "10.244.0.5"),
        ("cali60s:api", "fd00::5"),
    )
    ports = [("http", "TCP", 8080)]
    assert named_port_members(SETS, "fd00::5", ports) == (("cali60n:http", "fd00::5,tcp:8080"),)
    assert named_port_members(SETS, "10.0.0.5", ports) == (("cali40n:http", "10.0.0.5,tcp:8080"),)


def record(address: str, address_v6: str | None, **labels: str) -> EndpointRecord:
    return EndpointRecord(IFACE, "c", "eth0", address, "shop", labels, {}, (), address_v6)


def test_runtime_members_of_dual_stack_and_ipv6_only_records() -> None:
    dual = record("10.244.0.5", "fd00:244::5", app="api")
    only6 = EndpointRecord(
        "calibbbbbbbbbbb", "c", "eth0", "fd00:244::6", "shop", {"app": "api"}, {},
        (("cali60n:http", "fd00:244::6,tcp:80"),), "fd00:244::6",
    )  # fmt: skip
    members = runtime_members([dual, only6], MANIFEST)
    assert members["cali40s:api"] == {"10.244.0.5"}
    assert members["cali60s:api"] == {"fd00:244::5", "fd00:244::6"}
    assert members["cali60n:http"] == {"fd00:244::6,tcp:80"}
    v6 = rules_for_all([dual, record("10.244.0.7", None, app="api")], MANIFEST, family=6)
    assert [e.iface for e in v6] == [IFACE], "only pods with an IPv6 address: ip6tables chains"


def test_cluster_members_from_the_api_put_ipv6_pod_ips_in_the_twins() -> None:
    body = {
        "items": [
            {
                "metadata": {"namespace": "shop", "name": "api-0", "labels": {"app": "api"}},
                "status": {
                    "phase": "Running",
                    "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00:244::5"}, {"ip": "fd00:9::1"}],
                },
                "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 80}]}]},
            }
        ]
    }
    pods = pods_from_list(body, [ip_network("10.244.0.0/16"), ip_network("fd00:244::/56")])
    assert [p.address for p in pods] == ["10.244.0.5", "fd00:244::5"]  # fd00:9::1: no pool
    members = cluster_members(SETS, pods, {})
    assert members == {
        "cali40s:api": {"10.244.0.5"},
        "cali60s:api": {"fd00:244::5"},
        "cali40n:http": {"10.244.0.5,tcp:80"},
        "cali60n:http": {"fd00:244::5,tcp:80"},
    }


def test_restores_run_side_by_side_and_a_failure_is_reported() -> None:
    start = time.monotonic()
    outs = _run_together([(["sh", "-c", "sleep 0.4; cat"], "a"), (["sh", "-c", "sleep 0.4"], None)])
    assert outs == ["a", ""]
    assert time.monotonic() - start < 0.75, "both processes run at once"
    with pytest.raises(CniError, match="false failed"):
        _run_together([(["true"], None), (["false"], "x")])


def test_a_restore_of_one_family_keeps_the_other_familys_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generation = [7]
    monkeypatch.setattr(live_filter, "nft_generation", lambda: generation[0])
    monkeypatch.setattr(live_filter, "current_netns", lambda: 1)
    monkeypatch.setattr(live_filter, "iptables_backend", lambda: "nft")
    v4, v6 = live_filter.FilterCache(enabled=True), live_filter.FilterCache(enabled=True)
    before4 = v4.read(lambda: "v4 text\n")
    v6.read(lambda: "v6 text\n")
    generation[0] = 8  # our iptables restore
    v4.restored(before4, "*filter\nCOMMIT\n")
    v6.advance(before4, 1)
    assert v6.read(lambda: pytest.fail("the IPv6 table was not changed: no ip6tables-save"))
    generation[0] = 10  # someone else too
    v4.advance(v6.read(lambda: "v6 again\n"), 1)
    assert v4.read(lambda: "v4 read again\n").text == "v4 read again\n"
