"""The CNI server's deferred writes (agent/cni/later.py) and the one ip6tables transaction a
batch of them becomes (agent/cni/endpoint_policy.py merge_restores)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from calicc.agent.cni.endpoint_policy import merge_restores
from calicc.agent.cni.errors import POLICY_FAILURE, CniError
from calicc.agent.cni.later import Later
from calicc.agent.cni.live_filter import apply_restore
from calicc.contract.endpoint import PodPolicies, add_restore, del_restore, endpoint_rules

Batch = dict[str, Callable[[], str | None]]


def recorder() -> tuple[Later[str | None], list[dict[str, str | None]]]:
    batches: list[dict[str, str | None]] = []

    def write(batch: Batch) -> None:
        batches.append({key: value() for key, value in batch.items()})

    return Later(write), batches


def test_writes_wait_for_run() -> None:
    """The server runs the queue after closing the connection: a queued write must not start
    while the request that queued it is still answering."""
    later, batches = recorder()
    later.submit("a", lambda: "chains")
    time.sleep(0.05)
    assert batches == []
    assert later.writer is None
    later.run()
    later.wait()
    assert batches == [{"a": "chains"}]
    later.run()  # nothing queued: no writer
    assert later.writer is None


def test_a_batch_keeps_the_latest_write_of_each_key_in_submission_order() -> None:
    later, batches = recorder()
    later.submit("a", lambda: "add a")
    later.submit("b", lambda: "add b")
    later.submit("a", lambda: None)  # a's DEL came after: only it counts, and after b
    later.wait()
    assert batches == [{"b": "add b", "a": None}]
    assert list(batches[0]) == ["b", "a"]


def test_a_failed_write_is_reported_and_the_queue_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done: list[str] = []

    def write(batch: Batch) -> None:
        for key, value in batch.items():
            if value() is None:
                raise CniError(POLICY_FAILURE, f"ip6tables-restore failed for {key}")
            done.append(key)

    later: Later[str | None] = Later(write)
    later.submit("a", lambda: None)
    later.wait()
    assert "ip6tables-restore failed for a" in capsys.readouterr().err
    later.submit("b", lambda: "x")  # a new writer after the last one ended
    later.wait()
    assert done == ["b"]


def test_a_writer_ended_by_an_unexpected_error_is_replaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done: list[str] = []

    def write(batch: Batch) -> None:
        if "broken" in batch:
            raise ValueError("a bug in a write")
        done.extend(batch)

    later: Later[str | None] = Later(write)
    later.submit("broken", lambda: None)
    later.wait()
    assert "a bug in a write" in capsys.readouterr().err
    later.submit("ok", lambda: None)  # the writer that failed must not block the queue
    later.wait()
    assert done == ["ok"]


LIVE = """*filter
:cali-from-wl-dispatch - [0:0]
:cali-to-wl-dispatch - [0:0]
:cali-fw-caliold - [0:0]
:cali-tw-caliold - [0:0]
-A cali-from-wl-dispatch -i caliold -g cali-fw-caliold
-A cali-from-wl-dispatch -m comment --comment "Unknown interface" -j DROP
-A cali-to-wl-dispatch -o caliold -g cali-tw-caliold
-A cali-to-wl-dispatch -m comment --comment "Unknown interface" -j DROP
-A cali-fw-caliold -j DROP
-A cali-tw-caliold -j DROP
COMMIT
"""


def test_a_merged_transaction_does_what_its_parts_do_one_after_another() -> None:
    """One pod's chains added, another's removed: the merged restore leaves the table the
    parts would, applied in turn (the parts touch different chains)."""
    policies = PodPolicies(ingress=(("cali-pi-x", "shop/x"),))
    new = endpoint_rules("calinew", policies, family=6)
    parts = [add_restore(new, LIVE), del_restore("caliold", LIVE)]
    assert None not in parts
    merged = merge_restores([p for p in parts if p is not None])
    assert merged is not None
    assert merged.count("*filter") == 1
    assert merged.count("COMMIT") == 1
    one_by_one = LIVE
    for part in parts:
        assert part is not None
        one_by_one = apply_restore(one_by_one, part)
    assert apply_restore(LIVE, merged) == one_by_one
    assert "caliold" not in one_by_one
    assert "-g cali-tw-calinew" in one_by_one
    assert merge_restores([]) is None
