"""The stub Kubernetes API's Services and EndpointSlices (tests/support/kubeapi.py): lists at
their real paths and apiVersions, watches of each kind seeing only their own changes."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.kubeapi import KubeApi
from tests.unit.support.test_kubeapi import get

SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.fixture
def api() -> Iterator[KubeApi]:
    stub = KubeApi(token="t0ken")
    stub.put_service("shop", "web", cluster_ips=["10.96.0.10"], traffic_policy="Local")
    stub.put_endpoint_slice("shop", "web-1", "web", [("10.244.0.5", "n1", True)])
    stub.start(None, "127.0.0.1", 0)
    yield stub
    stub.stop()


def test_lists_at_their_paths_with_their_api_versions(api: KubeApi) -> None:
    code, services = get(api, "/api/v1/services?resourceVersion=0")
    assert code == 200
    assert (services["kind"], services["apiVersion"]) == ("ServiceList", "v1")
    (svc,) = services["items"]
    assert svc["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    code, slices = get(api, SLICES)
    assert (code, slices["apiVersion"]) == (200, "discovery.k8s.io/v1")
    (piece,) = slices["items"]
    assert piece["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}
    assert piece["endpoints"] == [
        {"addresses": ["10.244.0.5"], "nodeName": "n1", "conditions": {"ready": True}}
    ]
    assert get(api, "/api/v1/endpointslices")[0] == 404  # not a core kind
    assert get(api, "/apis/discovery.k8s.io/v2/endpointslices")[0] == 404


def watch_lines(api: KubeApi, path: str, since: int) -> list[dict[str, Any]]:
    """Return the events of a watch from `since` that the server ends at once (timeout 1 s)."""
    code, _ = get(api, f"{path}?resourceVersion=0")
    assert code == 200
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    query = f"?watch=1&resourceVersion={since}&timeoutSeconds=1"
    conn.request("GET", path + query, headers={"Authorization": f"Bearer {api.token}"})
    lines = [json.loads(line) for line in conn.getresponse() if line.strip()]
    conn.close()
    return lines


def test_watches_see_their_own_kind_only(api: KubeApi) -> None:
    since = api.version
    api.put_endpoint_slice("shop", "web-1", "web", [("10.244.1.5", "n2", False)])
    api.delete_service("shop", "web")
    slices = watch_lines(api, SLICES, since)
    assert [(e["type"], e["object"]["endpoints"][0]["nodeName"]) for e in slices] == [
        ("MODIFIED", "n2")
    ]
    services = watch_lines(api, "/api/v1/services", since)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in services] == [("DELETED", "web")]
