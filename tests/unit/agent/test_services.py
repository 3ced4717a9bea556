"""Local Service routes: Calico's rule (agent/service_routes.py) and the agent's source of them
(agent/services.py) against the stub API (tests/support/kubeapi.py), listing and watching."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Any

import pytest

from calicc.agent import services as services_module
from calicc.agent.service_routes import advertised_here, host_routes
from calicc.agent.services import ServiceSource, include_texts
from calicc.contract.services import ServiceIps
from tests.support.kubeapi import KubeApi
from tests.support.poll import wait_for

IPS = ServiceIps(
    cluster_ips=(IPv4Network("10.96.0.0/12"), IPv6Network("fd00:96::/108")),
    external_ips=(IPv4Network("192.0.2.0/24"), IPv4Network("198.51.100.7/32")),
    loadbalancer_ips=(IPv4Network("203.0.113.0/24"), IPv4Network("203.0.113.200/32")),
    families=(4, 6),
)


def service(policy: str = "Local", kind: str = "LoadBalancer", **spec: Any) -> dict[str, Any]:
    body = {
        "type": kind,
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ipFamilies": ["IPv4"],
        "externalIPs": ["192.0.2.5", "172.16.0.1"],  # the second is in no configured CIDR
        "externalTrafficPolicy": policy,
        **spec,
    }
    status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "x"}]}}
    return {"metadata": {"namespace": "shop", "name": "web"}, "spec": body, "status": status}


def endpoints(*eps: tuple[str, bool | None], family: str = "IPv4") -> list[dict[str, Any]]:
    items = [
        {"addresses": ["10.244.0.5"], "nodeName": node, "conditions": {"ready": ready}}
        if ready is not None
        else {"addresses": ["10.244.0.5"], "nodeName": node}
        for node, ready in eps
    ]
    meta = {"namespace": "shop", "name": "web-x", "labels": {"kubernetes.io/service-name": "web"}}
    return [{"metadata": meta, "addressType": family, "endpoints": items}]


def routes(svc: dict[str, Any], slices: list[dict[str, Any]], node: str) -> list[str]:
    found = host_routes([svc], slices, node, IPS)
    return [str(a) for v in (4, 6) for a in found[v]]


def test_local_service_is_advertised_from_the_nodes_of_its_ready_endpoints() -> None:
    slices = endpoints(("n1", True), ("n2", False), ("n3", None))
    wanted = ["10.96.0.10", "192.0.2.5", "203.0.113.9"]  # cluster, external, ingress IPs
    assert routes(service(), slices, "n1") == wanted
    assert routes(service(), slices, "n2") == []  # not ready
    assert routes(service(), slices, "n3") == wanted  # ready unset means ready
    assert routes(service(), slices, "n4") == []  # no endpoint there


def test_slices_of_another_family_or_service_do_not_count() -> None:
    assert routes(service(), endpoints(("n1", True), family="IPv6"), "n1") == []
    other = endpoints(("n1", True))
    other[0]["metadata"]["labels"] = {"kubernetes.io/service-name": "db"}
    assert routes(service(), other, "n1") == []


@pytest.mark.parametrize(
    ("svc", "why"),
    [
        (service(kind="ExternalName"), "type served by no node"),
        (service(clusterIP="None", clusterIPs=["None"]), "headless"),
        (service(policy="Cluster"), "Cluster, ranges only: every node advertises the CIDRs"),
    ],
)
def test_services_not_advertised_per_node(svc: dict[str, Any], why: str) -> None:
    assert not advertised_here(svc, endpoints(("n1", True)), "n1", IPS), why


def test_cluster_service_with_a_single_configured_address_is_advertised_everywhere() -> None:
    single = service(policy="Cluster", externalIPs=["198.51.100.7"])
    assert routes(single, [], "n9") == ["10.96.0.10", "198.51.100.7", "203.0.113.9"]
    balanced = service(policy="Cluster", externalIPs=[])
    balanced["status"]["loadBalancer"]["ingress"] = [{"ip": "203.0.113.200"}]
    assert routes(balanced, [], "n9") == ["10.96.0.10", "203.0.113.200"]


def test_cluster_ip_service_without_a_policy_is_not_a_cluster_one() -> None:
    svc = service(policy="Cluster", kind="ClusterIP", externalIPs=["198.51.100.7"])
    del svc["spec"]["externalTrafficPolicy"]  # as the API leaves a ClusterIP Service
    assert not advertised_here(svc, endpoints(("n1", True)), "n1", IPS)


def test_without_aggregation_cluster_services_follow_any_ready_endpoint() -> None:
    ips = IPS.model_copy(update={"aggregate_loadbalancer_ips": False})
    svc = service(policy="Cluster", externalIPs=[])
    found = host_routes([svc], endpoints(("n1", True)), "n7", ips)  # from every node
    assert [str(a) for a in found[4]] == ["10.96.0.10", "203.0.113.9"]
    assert host_routes([svc], endpoints(("n1", False)), "n7", ips)[4] == []  # none ready
    local = service(policy="Local", externalIPs=[])
    assert host_routes([local], endpoints(("n1", True)), "n7", ips)[4] == []  # still Local


def test_dual_stack_service_gets_both_host_routes() -> None:
    svc = service(clusterIPs=["10.96.0.10", "fd00:96::a"], ipFamilies=["IPv4", "IPv6"])
    assert routes(svc, endpoints(("n1", True)), "n1")[-1] == "fd00:96::a"
    text = include_texts(IPS, host_routes([svc], endpoints(("n1", True)), "n1", IPS))
    assert text["services/ipv6.conf"].splitlines()[1:] == ["route fd00:96::a/128 blackhole;"]
    assert "route 10.96.0.10/32 blackhole;" in text["services/ipv4.conf"]


def test_hostile_objects_are_ignored_not_fatal() -> None:
    svc = service(clusterIPs=["10.96.0.10", "x; protocol", 7], externalIPs="192.0.2.5")
    svc["status"] = {"loadBalancer": []}
    slices = endpoints(("n1", True))
    slices.append({"metadata": None, "endpoints": "nope"})
    assert routes(svc, slices, "n1") == ["10.96.0.10"]
    assert ip_address("10.96.0.10") in host_routes([svc], slices, "n1", IPS)[4]


# --- the agent's source, against the stub API -------------------------------------------------


@pytest.fixture
def api() -> Iterator[KubeApi]:
    with KubeApi() as served:
        served.put_service(
            "shop", "web", cluster_ips=["10.96.0.10"], traffic_policy="Local", kind="NodePort"
        )
        served.put_endpoint_slice("shop", "web-abc", "web", [("10.244.0.5", "n1", True)])
        served.start()
        yield served


def test_one_shot_refresh_lists_services_and_slices(api: KubeApi, tmp_path: Path) -> None:
    conf = api.kubeconfig(tmp_path / "kubeconfig")
    texts = ServiceSource().refresh(IPS, "n1", conf)
    assert texts["services/ipv4.conf"].splitlines()[1:] == ["route 10.96.0.10/32 blackhole;"]
    assert texts["services/ipv6.conf"].splitlines()[1:] == []
    assert ServiceSource().refresh(IPS, "n2", conf)["services/ipv4.conf"].count("route") == 0
    paths = [p.split("?")[0] for p in api.requests]
    assert paths == [
        "/api/v1/services",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/services",
        "/apis/discovery.k8s.io/v1/endpointslices",
    ]


def test_watch_follows_an_endpoint_moving_and_keeps_routes_in_an_outage(
    api: KubeApi, tmp_path: Path
) -> None:
    conf = api.kubeconfig(tmp_path / "kubeconfig")

    def v4(source: ServiceSource, node: str) -> str:
        return source.refresh(IPS, node, conf)["services/ipv4.conf"]

    woke = threading.Event()
    on_n1 = ServiceSource(watch=True, on_change=woke.set)
    on_n2 = ServiceSource(watch=True)
    try:
        assert "10.96.0.10/32" in on_n1.refresh(IPS, "n1", conf)["services/ipv4.conf"]
        assert "route" not in on_n2.refresh(IPS, "n2", conf)["services/ipv4.conf"]
        woke.clear()
        api.put_endpoint_slice("shop", "web-abc", "web", [("10.244.1.5", "n2", True)])
        assert woke.wait(5)
        wait_for(lambda: "route" not in v4(on_n1, "n1"), "n1 withdraws")
        wait_for(lambda: "10.96.0.10/32" in v4(on_n2, "n2"), "n2 advertises")
        api.fail(503)
        wait_for(
            lambda: on_n2.informers is not None and on_n2.informers[0].error is not None, "503"
        )
        assert "10.96.0.10/32" in v4(on_n2, "n2")  # an outage withdraws nothing
        assert on_n2.error is not None
        assert "Kubernetes API" in on_n2.error
        api.fail(None)
        api.delete_service("shop", "web")
        wait_for(lambda: "route" not in v4(on_n2, "n2"), "the deleted Service withdrawn")
        assert on_n2.error is None
    finally:
        on_n1.stop()
        on_n2.stop()


def test_without_an_api_nothing_is_advertised() -> None:
    source = ServiceSource()
    assert source.refresh(IPS, "n1", None)["services/ipv4.conf"].count("route") == 0
    assert source.error is not None
    assert "no Kubernetes API" in source.error


def test_routes_are_computed_again_only_after_a_change(
    api: KubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = api.kubeconfig(tmp_path / "kubeconfig")
    calls: list[str] = []
    real = host_routes

    def counted(*args: Any) -> dict[int, list[Any]]:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(services_module, "host_routes", counted)
    source = ServiceSource(watch=True)
    try:
        for _ in range(3):
            source.refresh(IPS, "n1", conf)
        assert calls == ["n1"]  # one computation for three reconciles without a change
        api.put_endpoint_slice("shop", "web-abc", "web", [("10.244.1.5", "n2", True)])
        wait_for(lambda: "route" not in source.refresh(IPS, "n1", conf)["services/ipv4.conf"], "")
        assert len(calls) >= 2
        assert "route" not in source.refresh(IPS, "n1", None)["services/ipv4.conf"]
        assert source.informers is None  # no API configured: the watches end
    finally:
        source.stop()
