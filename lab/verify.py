"""Observed versus expected for a running lab's routing: BGP sessions and block routes.

Each finding is a Row; `calicc lab check` prints them, `lab up` waits until they all pass.
Daemons and nodes are queried several at once (each query is a `birdc`, `gobgp` or `ip`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.plan import ClusterPlan
from calicc.lab.bird import bgp_sessions, kernel_routes, route_key
from calicc.lab.expect import lab_routes, own_block_leaks
from calicc.lab.gobgp import neighbor_states
from calicc.lab.parallel import run_each
from calicc.lab.state import LabState
from calicc.lab.topology import Topology

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


def daemon_rows(state: LabState, topo: Topology, key: str) -> list[Row]:
    """Return one row per BGP session of the daemon recorded under `key` (kind:who)."""
    proc = state.procs[key]
    kind, who = key.split(":", 1)
    if kind in {"bird", "tor"}:
        sessions = _sessions(proc.match)
    else:
        speaker = next(s for s in topo.speakers if s.name == who)
        sessions = {f"neighbor {a}": s for a, s in neighbor_states(speaker.ns).items()}
    rows = []
    for name, info in sorted(sessions.items()):
        ok = info.lower().startswith("established")
        rows.append(Row("bgp", f"{kind} {who}: {name}", "Established", info, PASS if ok else FAIL))
    return rows


def bgp_rows(state: LabState, topo: Topology) -> list[Row]:
    """Return one row per BGP session of every BIRD and gobgpd the lab started."""
    keys = sorted(state.procs)
    found = run_each(keys, lambda key: daemon_rows(state, topo, key), what="BGP sessions")
    return [row for rows in found for row in rows]


def node_route_rows(plan: ClusterPlan, topo: Topology, node: str) -> list[Row]:
    """Return one row per expected remote block route of `node`, and one for own-block leaks."""
    me = plan.node(node)
    host = topo.node(node)
    kernel = kernel_routes(host.ns) if host.address else []
    kernel += kernel_routes(host.ns, 6) if host.address_v6 else []
    have = {route_key(r) for r in kernel}
    rows = []
    for want in lab_routes(plan, topo, node):
        seen = want.key in have
        observed = "present" if seen else _closest(want.key[0], kernel)
        rows.append(Row("route", node, want.text, observed, PASS if seen else FAIL))
    leaks = own_block_leaks(me, kernel)
    rows.append(
        Row(
            "route",
            node,
            "no own block from BGP",
            ", ".join(leaks) or "none",
            FAIL if leaks else PASS,
        )
    )
    return rows


def route_rows(plan: ClusterPlan, topo: Topology) -> list[Row]:
    """Return the route rows of every node, in node order."""
    names = [n.name for n in plan.nodes]
    found = run_each(names, lambda node: node_route_rows(plan, topo, node), what="routes")
    return [row for rows in found for row in rows]


def _closest(dst: str, kernel: list[dict[str, object]]) -> str:
    same = [r for r in kernel if r.get("dst") == dst]
    if not same:
        return "missing"
    key = route_key(same[0])
    return f"via {key[1]} dev {key[2]} proto {key[3]}{' onlink' if key[4] else ''}"
