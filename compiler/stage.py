"""Render every node on every core into a staging directory; the caller swaps it into place.

Workers are forked with the plan in memory and return only what changed and the digests, so
no rendered text crosses a process boundary. Nothing under the output directory is touched
here: if any node fails to render, the staging directory is dropped and nothing is written.
A node whose render key (compiler/render_keys.py) is the one the previous index.json records,
and whose files are all there with the digests it records, is not rendered again (reading and
hashing a node's files costs a tenth of rendering them); a hand-edited file is rendered again.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from calicc.compiler.emit import digest, file_digest, same_text, write_new
from calicc.compiler.outdir import writing
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import cluster_entries, render_node
from calicc.compiler.render_keys import render_key, shared_key
from calicc.compiler.targets.shared import shared_plan

T = TypeVar("T")

PARALLEL_MIN_NODES = 200  # below this a fork costs more than it saves


@dataclass(frozen=True)
class Job:
    """What every worker needs: the plan, the live tree and where to stage changed files.

    `previous` holds, per node, the render key and file digests the previous index.json lists.
    """

    plan: ClusterPlan
    out: Path
    existing: frozenset[str]
    staging: Path | None  # None: only compare (calicc build --check)
    previous: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeResult:
    """One node: its render key, the digest of each of its files, the tree paths that differ."""

    name: str
    key: str
    digests: dict[str, str]
    changed: tuple[str, ...]
    rendered: bool = True


_JOB: Job | None = None
_MADE: set[Path] = set()  # staging directories this process created (one mkdir each)


def mode_of(rel: str) -> int:
    """Return the file mode of a rendered file (scripts are executable)."""
    return 0o755 if rel.endswith(".sh") else 0o644


def stage_file(job: Job, rel: str, text: str) -> bool:
    """Stage `text` for tree path `rel` when it differs from the live file; return whether."""
    if rel in job.existing and same_text(job.out / rel, text):
        return False
    if job.staging is not None:
        target = job.staging / rel
        if target.parent not in _MADE:
            with writing(job.out / rel):
                target.parent.mkdir(parents=True, exist_ok=True)
            _MADE.add(target.parent)
        write_new(target, text, mode_of(rel), shown=job.out / rel)
    return True


def _unchanged(job: Job, name: str, key: str) -> Mapping[str, str] | None:
    """Return the previous digests of node `name` when its key and files say it is as built."""
    before = job.previous.get(name)
    if before is None or before[0] != key:
        return None
    for rel, want in before[1].items():
        path = f"nodes/{name}/{rel}"
        if path not in job.existing or file_digest(job.out / path) != want:
            return None
    return before[1]


def _node(job: Job, index: int) -> NodeResult:
    node = job.plan.nodes[index]
    key = render_key(job.plan, node)
    kept = _unchanged(job, node.name, key)
    if kept is not None:
        return NodeResult(node.name, key, dict(kept), (), rendered=False)
    files = render_node(job.plan, node)
    changed = tuple(
        f"nodes/{node.name}/{rel}"
        for rel, text in sorted(files.items())
        if stage_file(job, f"nodes/{node.name}/{rel}", text)
    )
    return NodeResult(
        node.name, key, {rel: digest(text) for rel, text in sorted(files.items())}, changed
    )


def _slice(bounds: tuple[int, int]) -> list[NodeResult]:
    assert _JOB is not None  # set before the fork
    return [_node(_JOB, i) for i in range(*bounds)]


def prepare_nodes(plan: ClusterPlan) -> None:
    """Compute what every node's render reads from the cluster (cached), before a fork."""
    shared_plan(plan)
    cluster_entries(plan)
    shared_key(plan)


def can_fork() -> bool:
    """Return whether forking workers is safe: only from a process with one thread.

    A lock that another thread holds at the fork (the import lock, a logging handler's) stays
    held forever in the child, which then hangs; `calicc build` has one thread, a test process
    or an embedding program may not, and renders in its own process instead.
    """
    return threading.active_count() == 1


def stage_nodes(job: Job, meanwhile: Callable[[], T]) -> tuple[list[NodeResult], T]:
    """Render and stage every node of the plan, in plan order; call `meanwhile` alongside.

    With forked workers, `meanwhile` (the cluster part) runs in this process while they
    render; else after the nodes. Returns the nodes' results and what `meanwhile` returned.
    """
    _MADE.clear()
    count = len(job.plan.nodes)
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or count < PARALLEL_MIN_NODES or not can_fork():  # noqa: PLR2004
        results = [_node(job, i) for i in range(count)]
        return results, meanwhile()
    prepare_nodes(job.plan)  # computed once here, inherited by every worker
    global _JOB  # noqa: PLW0603 - inherited by the forked workers, never pickled
    _JOB = job
    step = -(-count // (workers * 4))
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        pending = pool.map_async(_slice, [(i, min(i + step, count)) for i in range(0, count, step)])
        other = meanwhile()
        parts = pending.get()
        pool.close()  # workers leave on their own, not by SIGTERM
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        _JOB = None
    return [result for part in parts for result in part], other
