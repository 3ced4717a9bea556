"""The lab's parallel runner and progress lines: order, failures named, every item run."""

from __future__ import annotations

import threading

import pytest

from calicc.lab.parallel import JobsFailed, run_each
from calicc.lab.progress import Progress


def test_results_keep_the_items_order_when_jobs_finish_out_of_order() -> None:
    second_done = threading.Event()

    def job(item: int) -> int:
        if item == 0:
            assert second_done.wait(5), "item 1 never ran beside item 0"
        if item == 1:
            second_done.set()
        return item * 10

    assert run_each([0, 1, 2], job, workers=2) == [0, 10, 20]


def test_one_failing_node_is_named_and_every_other_node_still_runs() -> None:
    ran: list[str] = []
    lock = threading.Lock()

    def job(node: str) -> str:
        with lock:
            ran.append(node)
        if node in {"node-b", "node-d"}:
            raise RuntimeError(f"apply failed on {node}")
        return node

    lines: list[str] = []
    progress = Progress("nodes", 5, "applied", lines.append, every=1e9)
    nodes = ["node-a", "node-b", "node-c", "node-d", "node-e"]
    with pytest.raises(JobsFailed) as caught:
        run_each(nodes, job, what="calicc apply", workers=3, progress=progress)
    assert sorted(ran) == nodes
    assert list(caught.value.failures) == ["node-b", "node-d"]
    text = str(caught.value)
    assert text.splitlines()[0] == "calicc apply failed for 2 of 5:"
    assert "node-b: apply failed on node-b" in text
    assert "node-a" not in text
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "node-b" in str(caught.value.__cause__)
    assert lines == ["nodes: 5/5 applied (0 s)"]  # failed items count as finished too


def test_items_are_named_by_the_given_function() -> None:
    def job(item: tuple[str, int]) -> None:
        raise ValueError(item[1])

    with pytest.raises(JobsFailed, match="x: 7"):
        run_each([("x", 7)], job, name=lambda item: item[0])


def test_progress_prints_when_due_and_when_complete() -> None:
    now = [100.0]
    lines: list[str] = []
    progress = Progress("nodes", 4, "applied", lines.append, every=3.0, clock=lambda: now[0])
    progress.step()
    now[0] = 102.0
    progress.step()
    now[0] = 103.5
    progress.step()
    progress.step()
    assert lines == ["nodes: 3/4 applied (4 s)", "nodes: 4/4 applied (4 s)"]


def test_progress_update_may_go_down_and_prints_final_on_request() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = Progress("converged", 10, "nodes", lines.append, every=5.0, clock=lambda: now[0])
    progress.update(10)  # not final: a confirming sweep may still fail
    now[0] = 6.0
    progress.update(7)
    progress.update(10, final=True)
    assert lines == ["converged: 7/10 nodes (6 s)", "converged: 10/10 nodes (6 s)"]
