"""The agent's informer (agent/kube_watch.py) against the stub API (tests/support/kubeapi.py):
list then watch, every change applied and signalled, relist on 410 and on resync, an outage
keeps the last copy, and KubeSource reads the copies without a request per refresh."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.agent.kube_endpoints import PODS, PODS_QUERY, KubeSource
from calicc.agent.kube_watch import Informer
from tests.support.kubeapi import KubeApi
from tests.support.poll import wait_for

TIMEOUT = 5.0


@pytest.fixture
def api() -> Iterator[KubeApi]:
    with KubeApi() as served:
        served.put_namespace("shop", {"team": "a"})
        served.put_pod("shop", "web-0", {"app": "web"}, "10.244.0.5", "node-1")
        served.start()
        yield served


class Counter:
    """An on_change callback that counts and can be waited on."""

    def __init__(self) -> None:
        self.calls = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        self.event.set()


def labels_of(informer: Informer) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["metadata"]["labels"] for o in informer.snapshot()[1]}


@pytest.fixture
def pods(api: KubeApi, tmp_path: Path) -> Iterator[tuple[Informer, Counter]]:
    changed = Counter()
    informer = Informer(api.kubeconfig(tmp_path / "kubeconfig"), PODS, PODS_QUERY, changed)
    informer.start()
    assert informer.synced.wait(TIMEOUT)
    yield informer, changed
    informer.stop()


def test_list_then_watch_applies_each_change_and_signals_it(
    api: KubeApi, pods: tuple[Informer, Counter]
) -> None:
    informer, changed = pods
    assert labels_of(informer) == {"web-0": {"app": "web"}}
    lists = informer.lists
    changed.event.clear()
    api.label_pod("shop", "web-0", {"app": "web", "deny": "yes"})
    assert changed.event.wait(TIMEOUT)
    assert labels_of(informer) == {"web-0": {"app": "web", "deny": "yes"}}
    api.put_pod("shop", "web-1", {"app": "web"}, "10.244.0.6", "node-1")
    api.delete_pod("shop", "web-0")
    wait_for(lambda: set(labels_of(informer)) == {"web-1"}, "web-1 alone", TIMEOUT)
    assert informer.lists == lists, "a watched change must not need a new list"
    assert informer.version == str(api.version)


def test_stop_ends_a_blocked_watch_promptly(pods: tuple[Informer, Counter]) -> None:
    informer, _ = pods
    start = time.monotonic()
    informer.stop()
    assert time.monotonic() - start < 2
    assert informer._thread is not None
    assert not informer._thread.is_alive()


def test_a_watch_too_old_for_the_history_ends_for_a_new_list(api: KubeApi, tmp_path: Path) -> None:
    """The API answers a compacted version with an ERROR event (410 Expired): the watch must
    end at once (the loop then lists again) instead of waiting out its timeoutSeconds."""
    informer = Informer(api.kubeconfig(tmp_path / "k"), PODS, PODS_QUERY, Counter())
    informer._list()
    api.label_pod("shop", "web-0", {"app": "moved"})
    api.compact()
    start = time.monotonic()
    assert informer._watch() == "expired"
    assert time.monotonic() - start < 2
    assert labels_of(informer) == {"web-0": {"app": "web"}}  # nothing applied from the error
    informer._list()
    assert labels_of(informer) == {"web-0": {"app": "moved"}}


def test_outage_keeps_the_copy_and_recovers_by_listing(
    api: KubeApi, pods: tuple[Informer, Counter]
) -> None:
    informer, _ = pods
    lists = informer.lists
    api.fail(503)  # ends the watch; the relist fails
    wait_for(lambda: informer.error is not None, "the outage seen", TIMEOUT)
    assert labels_of(informer) == {"web-0": {"app": "web"}}
    api.label_pod("shop", "web-0", {"app": "after"})
    api.fail(None)
    wait_for(lambda: labels_of(informer) == {"web-0": {"app": "after"}}, "relisted", TIMEOUT)
    assert informer.lists > lists
    assert informer.error is None


def test_resync_lists_again_when_the_watch_times_out(api: KubeApi, tmp_path: Path) -> None:
    informer = Informer(api.kubeconfig(tmp_path / "k"), PODS, PODS_QUERY, Counter(), resync=1)
    informer.start()
    try:
        wait_for(lambda: informer.lists >= 2, "a second list", TIMEOUT)
    finally:
        informer.stop()


def test_kube_source_watching_reads_copies_not_the_api(api: KubeApi, tmp_path: Path) -> None:
    changed = Counter()
    source = KubeSource(api.kubeconfig(tmp_path / "k"), watch=True, on_change=changed)
    try:
        first = source.lists()
        assert first[0].startswith("w")
        before = len(api.requests)
        again = source.lists()
        assert again[:2] == first[:2]
        assert len(api.requests) == before, "a watching refresh sends no request"
        api.label_namespace("shop", {"team": "b"})
        assert changed.event.wait(TIMEOUT)
        wait_for(lambda: source.lists()[1] != first[1], "namespaces moved", TIMEOUT)
    finally:
        source.stop()
