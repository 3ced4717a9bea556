"""The stub Kubernetes API (tests/support/kubeapi.py): lists, objects, errors, watches, 410.

Served on 127.0.0.1 of this namespace (no root needed); one test, with root, serves it inside a
network namespace only. calicc's own client (agent/cni/kube.py) reads it through a kubeconfig.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get, pod_facts
from calicc.agent.kube_endpoints import NAMESPACES_PATH, PODS_PATH
from calicc.lab.netns import ns_run
from tests.support.kubeapi import KubeApi

PORTS = [("serve-80-tcp", 80, "TCP"), ("serve-81-udp", 81, "UDP")]


@pytest.fixture
def api() -> Iterator[KubeApi]:
    stub = KubeApi(token="t0ken", history=50)
    stub.bookmark_interval = 0.2
    stub.put_namespace("x", {"ns": "x"})
    stub.put_pod("x", "a", {"pod": "a"}, "10.0.0.1", "node-1", ports=PORTS)
    stub.start(None, "127.0.0.1", 0)
    yield stub
    stub.stop()


def get(api: KubeApi, path: str, token: str | None = None) -> tuple[int, Any]:
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token or api.token}"})
    answer = conn.getresponse()
    body = json.loads(answer.read())
    conn.close()
    return answer.status, body


class Watch:
    """A watch request read line by line from a thread (events land in `events`)."""

    def __init__(self, api: KubeApi, path: str) -> None:
        host, port = api.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {api.token}"})
        self.answer = self.conn.getresponse()
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.answer:
            self.events.append(json.loads(line))
        self.done.set()

    def finish(self, limit: float = 5.0) -> list[dict[str, Any]]:
        assert self.done.wait(limit), f"the watch did not end: {self.events}"
        self.conn.close()
        return self.events

    def seen(self) -> list[tuple[str, str]]:
        """Return (type, name-or-version) of every event so far, bookmarks left out."""
        return [
            (e["type"], e["object"]["metadata"].get("name", ""))
            for e in self.events
            if e["type"] != "BOOKMARK"
        ]


def test_lists_carry_one_global_resource_version(api: KubeApi) -> None:
    status, pods = get(api, "/api/v1/pods")
    assert status == 200
    assert pods["kind"] == "PodList"
    assert pods["metadata"]["resourceVersion"] == "3"  # namespace 2, pod 3
    assert [p["metadata"]["resourceVersion"] for p in pods["items"]] == ["3"]
    api.put_namespace("y")
    _, spaces = get(api, "/api/v1/namespaces")
    assert spaces["metadata"]["resourceVersion"] == "4"
    assert [n["metadata"]["name"] for n in spaces["items"]] == ["x", "y"]
    assert spaces["items"][1]["metadata"]["labels"] == {"kubernetes.io/metadata.name": "y"}


def test_field_and_label_selectors(api: KubeApi) -> None:
    api.put_pod("x", "done", {"pod": "b"}, "10.0.0.2", "node-2", phase="Succeeded")
    _, pods = get(api, PODS_PATH)  # what the agent asks: Succeeded and Failed left out
    assert [p["metadata"]["name"] for p in pods["items"]] == ["a"]
    _, pods = get(api, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2")
    assert [p["metadata"]["name"] for p in pods["items"]] == ["done"]
    _, pods = get(api, "/api/v1/namespaces/x/pods?labelSelector=pod%21%3Da")
    assert [p["metadata"]["name"] for p in pods["items"]] == ["done"]
    status, body = get(api, "/api/v1/pods?fieldSelector=spec.hostname%3Dz")
    assert (status, body["reason"]) == (400, "BadRequest")


def test_objects_errors_and_outage(api: KubeApi) -> None:
    status, body = get(api, "/api/v1/namespaces/nope")
    assert (status, body["kind"], body["reason"], body["code"]) == (404, "Status", "NotFound", 404)
    status, _ = get(api, "/api/v1/namespaces/x/pods/zz")
    assert status == 404
    status, body = get(api, "/api/v1/pods", token="wrong")
    assert (status, body["code"]) == (401, 401)
    api.fail(503)
    assert get(api, "/api/v1/pods")[0] == 503
    api.fail(None)
    assert get(api, "/api/v1/pods")[0] == 200
    assert api.requests[-1] == "/api/v1/pods"


def test_calicc_client_reads_it_through_a_kubeconfig(api: KubeApi, tmp_path: Path) -> None:
    config = api.kubeconfig(tmp_path / "kubeconfig")
    facts = pod_facts(config, "x", "a")
    assert facts.labels == {"pod": "a"}
    assert facts.namespace_labels == {"kubernetes.io/metadata.name": "x", "ns": "x"}
    assert facts.ports == (("serve-80-tcp", "TCP", 80), ("serve-81-udp", "UDP", 81))
    assert api_get(config, NAMESPACES_PATH)["items"][0]["metadata"]["name"] == "x"
    api.fail(500)
    with pytest.raises(CniError, match=r"GET http://127\.0\.0\.1"):
        api_get(config, PODS_PATH)


def test_watch_replays_history_then_streams_live_events(api: KubeApi) -> None:
    api.put_pod("x", "b", {"pod": "b"}, "10.0.0.2", "node-2")  # version 4
    watch = Watch(api, "/api/v1/pods?watch=1&resourceVersion=3&timeoutSeconds=1")
    assert watch.answer.getheader("Transfer-Encoding") == "chunked"
    api.label_pod("x", "a", {"pod": "z"})
    api.put_namespace("y")  # another kind: not in a pods watch, but it takes version 6
    api.delete_pod("x", "b")
    events = watch.finish()
    assert watch.seen() == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert [e["object"]["metadata"]["resourceVersion"] for e in events] == ["4", "5", "7"]
    assert events[1]["object"]["metadata"]["labels"] == {"pod": "z"}


def test_watch_without_version_starts_with_the_current_state(api: KubeApi) -> None:
    watch = Watch(api, "/api/v1/namespaces?watch=true&timeoutSeconds=1&allowWatchBookmarks=true")
    api.label_namespace("x", {"ns": "renamed"})
    events = watch.finish()
    assert watch.seen() == [("ADDED", "x"), ("MODIFIED", "x")]
    assert events[-1]["type"] == "BOOKMARK"
    assert events[-1]["object"]["kind"] == "Namespace"
    assert events[-1]["object"]["metadata"] == {"resourceVersion": "4"}


def test_watch_with_a_selector_sees_objects_enter_and_leave(api: KubeApi) -> None:
    watch = Watch(api, "/api/v1/watch/pods?resourceVersion=3&labelSelector=pod%3Da")
    api.label_pod("x", "a", {"pod": "b"})  # leaves the selector: DELETED
    api.put_pod("x", "c", {"pod": "c"}, "10.0.0.3", "node-1")  # never matches: unseen
    api.label_pod("x", "a", {"pod": "a"})  # comes back: ADDED
    api.stop()  # ends the stream
    watch.finish()
    assert watch.seen() == [("DELETED", "a"), ("ADDED", "a")]


def test_too_old_resource_version_is_410_expired(api: KubeApi) -> None:
    for index in range(60):  # more changes than the history of 50 holds
        api.label_pod("x", "a", {"pod": str(index)})
    events = Watch(api, "/api/v1/pods?watch=1&resourceVersion=3").finish()
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert "too old resource version: 3" in status["message"]
    recent = Watch(api, f"/api/v1/pods?watch=1&resourceVersion={api.version - 1}&timeoutSeconds=0")
    assert [e["type"] for e in recent.finish()] == ["MODIFIED"]
    api.compact()
    again = Watch(api, f"/api/v1/pods?watch=1&resourceVersion={api.version - 1}").finish()
    assert again[0]["object"]["code"] == 410


def test_outage_ends_open_watches(api: KubeApi) -> None:
    watch = Watch(api, "/api/v1/pods?watch=1&resourceVersion=3")
    api.fail(503)
    assert watch.finish() == []


@pytest.mark.root
def test_serves_inside_a_network_namespace_only(make_ns: Any) -> None:
    ns = make_ns("api")
    stub = KubeApi()
    stub.put_namespace("x")
    stub.start(ns, "127.0.0.1", 16443)
    try:
        code = (
            "import urllib.request as u; r = u.Request('http://127.0.0.1:16443/api/v1/namespaces',"
            f" headers={{'Authorization': 'Bearer {stub.token}'}}); print(u.urlopen(r).read())"
        )
        seen = ns_run(ns, ["/usr/bin/python3", "-c", code])
        assert '"x"' in seen.stdout
        with socket.socket() as probe:  # nothing listens on that port in this namespace
            assert probe.connect_ex(("127.0.0.1", 16443)) != 0
    finally:
        stub.stop()
