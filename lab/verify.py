"""Observed versus expected for a running lab's routing: BGP sessions and block routes.

Each finding is a Row; `calicc lab check` prints them, `lab up` waits until they all pass.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.plan import ClusterPlan
from calicc.lab.bird import bgp_sessions, kernel_routes, route_key
from calicc.lab.expect import expected_routes, own_block_leaks
from calicc.lab.gobgp import neighbor_states
from calicc.lab.state import LabState
from calicc.lab.topology import Topology
from calicc.lab.wait import poll

CONVERGE_S = 30.0
CONVERGE_PER_NODE_S = 0.5  # BIRD on 200 nodes shares two cores: sessions come up over a minute
PASS, FAIL, SKIP = "pass", "FAIL", "skip"


@dataclass(frozen=True)
class Row:
    """One line of the check: what was expected, what was seen, and the verdict."""

    check: str
    subject: str
    expected: str
    observed: str
    status: str


def _sessions(sock: str) -> dict[str, str]:
    try:
        return bgp_sessions(Path(sock))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return {"(daemon)": f"unreachable: {exc}"}


def bgp_rows(state: LabState, topo: Topology) -> list[Row]:
    """Return one row per BGP session of every BIRD and gobgpd the lab started."""
    rows = []
    for key, proc in sorted(state.procs.items()):
        kind, who = key.split(":", 1)
        if kind in {"bird", "tor"}:
            sessions = _sessions(proc.match)
        else:
            speaker = next(s for s in topo.speakers if s.name == who)
            sessions = {f"neighbor {a}": s for a, s in neighbor_states(speaker.ns).items()}
        for name, info in sorted(sessions.items()):
            ok = info.lower().startswith("established")
            rows.append(
                Row("bgp", f"{kind} {who}: {name}", "Established", info, PASS if ok else FAIL)
            )
    return rows


def route_rows(plan: ClusterPlan, topo: Topology) -> list[Row]:
    """Return one row per expected remote block route per node, and one for own-block leaks."""
    rows = []
    for node in plan.nodes:
        host = topo.node(node.name)
        kernel = kernel_routes(host.ns)
        have = {route_key(r) for r in kernel}
        for want in expected_routes(plan, node, topo.gateway(node.name)):
            seen = want.key in have
            observed = "present" if seen else _closest(want.key[0], kernel)
            rows.append(Row("route", node.name, want.text, observed, PASS if seen else FAIL))
        leaks = own_block_leaks(node, kernel)
        rows.append(
            Row(
                "route",
                node.name,
                "no own block from BGP",
                ", ".join(leaks) or "none",
                FAIL if leaks else PASS,
            )
        )
    return rows


def _closest(dst: str, kernel: list[dict[str, object]]) -> str:
    same = [r for r in kernel if r.get("dst") == dst]
    if not same:
        return "missing"
    key = route_key(same[0])
    return f"via {key[1]} dev {key[2]} proto {key[3]}{' onlink' if key[4] else ''}"


def wait_converged(plan: ClusterPlan, topo: Topology, state: LabState) -> list[Row]:
    """Wait until every BGP and route row passes; return the rows (raises WaitTimeout)."""

    def rows() -> list[Row]:
        return bgp_rows(state, topo) + route_rows(plan, topo)

    def probe() -> list[Row] | None:
        current = rows()
        return current if all(r.status == PASS for r in current) else None

    def failing() -> str:
        return "\n".join(
            f"{r.subject}: {r.expected} / {r.observed}" for r in rows() if r.status != PASS
        )

    timeout = CONVERGE_S + CONVERGE_PER_NODE_S * len(plan.nodes)
    return poll(probe, timeout, "BGP sessions and block routes", interval=0.2, last=failing)
