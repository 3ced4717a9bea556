"""Wait until a lab has converged: every BGP session Established, every block route in place.

Each round queries only the daemons and nodes that were not yet converged (several at once);
once none is left, one sweep over all of them must pass, as the check would see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from calicc.compiler.plan import ClusterPlan
from calicc.lab.parallel import run_each
from calicc.lab.progress import Echo, Progress, quiet
from calicc.lab.state import LabState
from calicc.lab.topology import Topology
from calicc.lab.verify import PASS, Row, daemon_rows, node_route_rows
from calicc.lab.wait import WaitTimeout

CONVERGE_S = 30.0
CONVERGE_PER_NODE_S = 0.5  # BIRD on 200 nodes shares two cores: sessions come up over a minute
INTERVAL_S = 0.2


@dataclass(frozen=True)
class Part:
    """One daemon's sessions or one node's routes: a name and how to read its rows."""

    name: str
    rows: Callable[[], list[Row]]


def parts(plan: ClusterPlan, topo: Topology, state: LabState) -> list[Part]:
    """Return every daemon the lab started (BGP rows), then every node (route rows)."""

    def daemon(key: str) -> Part:
        return Part(key, lambda: daemon_rows(state, topo, key))

    def node(name: str) -> Part:
        return Part(f"routes:{name}", lambda: node_route_rows(plan, topo, name))

    return [daemon(k) for k in sorted(state.procs)] + [node(n.name) for n in plan.nodes]


def _read(chosen: list[Part]) -> list[list[Row]]:
    return run_each(chosen, lambda part: part.rows(), name=lambda p: p.name, what="lab state")


def _failing(rows: list[Row]) -> str:
    return "\n".join(f"{r.subject}: {r.expected} / {r.observed}" for r in rows if r.status != PASS)


def wait_converged(
    plan: ClusterPlan, topo: Topology, state: LabState, progress: Echo = quiet
) -> list[Row]:
    """Wait until every BGP and route row of the lab passes; return the rows of the final sweep.

    Raises:
        WaitTimeout: not converged within 30 s plus 0.5 s per node; names the failing rows.
    """
    timeout = CONVERGE_S + CONVERGE_PER_NODE_S * len(plan.nodes)
    return converge(parts(plan, topo, state), timeout, progress)


def converge(every: list[Part], timeout: float, progress: Echo = quiet) -> list[Row]:
    """Poll the parts not yet passing until none is left and one sweep over all passes.

    Raises:
        WaitTimeout: the deadline passed; the message lists the rows that failed last.
    """
    deadline = time.monotonic() + timeout
    count = Progress("converged", len(every), "daemons and nodes", progress)
    pending = every
    while True:
        found = _read(pending)
        pending = [p for p, rows in zip(pending, found, strict=True) if _failing(rows)]
        last = [row for rows in found for row in rows]
        if not pending:
            sweep = _read(every)
            last = [row for rows in sweep for row in rows]
            if not _failing(last):
                count.update(len(every), final=True)
                return last
            pending = [p for p, rows in zip(every, sweep, strict=True) if _failing(rows)]
        count.update(len(every) - len(pending))
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:g} s waiting for BGP sessions and block routes; "
                f"last state:\n{_failing(last)}"
            )
        time.sleep(INTERVAL_S)
