"""Render nodes on every core: forked workers share the plan; results keep node order."""

from __future__ import annotations

import multiprocessing
import os

from compiler.plan import ClusterPlan
from compiler.render import render_node

PARALLEL_MIN_NODES = 400  # below this, forking costs more than it saves
_PLAN: ClusterPlan | None = None


def _render_slice(bounds: tuple[int, int]) -> list[dict[str, str]]:
    assert _PLAN is not None  # set before the fork
    return [render_node(_PLAN, node) for node in _PLAN.nodes[bounds[0] : bounds[1]]]


def render_all(plan: ClusterPlan) -> list[dict[str, str]]:
    """Return render_node() of every node, in plan order, using a process per core."""
    workers = min(os.cpu_count() or 1, 8)
    count = len(plan.nodes)
    if workers < 2 or count < PARALLEL_MIN_NODES:  # noqa: PLR2004
        return [render_node(plan, node) for node in plan.nodes]
    global _PLAN  # noqa: PLW0603 - inherited by the forked workers, never pickled
    _PLAN = plan
    step = -(-count // (workers * 4))
    slices = [(i, min(i + step, count)) for i in range(0, count, step)]
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_render_slice, slices)
    finally:
        _PLAN = None
    return [files for part in parts for files in part]
