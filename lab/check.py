"""`calicc lab check`: the connectivity matrix of a running lab, expected versus observed.

Rows: every BGP session Established; every remote block routed as its pool's mode demands and
no own block learned back; the underlay (each node reaches the external namespace through the
router); IPIP data-plane rows, reported as skipped when tunl0 is the ifb stand-in; the pod rows
of lab.podcheck (pod to pod, node to pod, pod to node, MTU, egress NAT seen from outside); the
trace's verdict for every pod pair and the cluster's intents, against real packets (lab.reach).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import TUNNEL_DEVICE
from calicc.lab.expect import lab_routes
from calicc.lab.matrix import Paths
from calicc.lab.parallel import run_each
from calicc.lab.podcheck import pod_rows
from calicc.lab.probe import ping
from calicc.lab.progress import Echo, Laps, quiet
from calicc.lab.reach import reach_rows
from calicc.lab.state import LabState
from calicc.lab.topology import EXTERNAL_HOST, EXTERNAL_HOST_V6, Topology, plan_topology
from calicc.lab.verify import FAIL, PASS, SKIP, Row, bgp_rows, route_rows
from calicc.lab.walkthrough import policy_rows


def underlay_rows(plan: ClusterPlan, topo: Topology) -> list[Row]:
    """Each node reaches the external namespace via its default router of each family it has.

    Pinged at once; IPv4 rows, then IPv6 rows.
    """
    pairs = [(n.name, str(EXTERNAL_HOST.ip)) for n in plan.nodes if n.address is not None]
    pairs += [(n.name, str(EXTERNAL_HOST_V6.ip)) for n in plan.nodes if n.address_v6 is not None]
    replies = run_each(
        pairs, lambda pair: ping(topo.node(pair[0]).ns, pair[1]), name=str, what="underlay"
    )
    return [
        Row(
            "underlay",
            f"{node} -> external" + (f" ({target})" if ":" in target else ""),
            "reply",
            "reply" if ok else "no reply",
            PASS if ok else FAIL,
        )
        for (node, target), ok in zip(pairs, replies, strict=True)
    ]


def ipip_rows(plan: ClusterPlan, topo: Topology, state: LabState) -> list[Row]:
    """One row per node pair whose pod traffic is IPIP: skipped when tunl0 is a stand-in."""
    if state.tunnel != "ifb":
        return []
    rows = []
    for node in plan.nodes:
        owners = sorted(
            {r.owner for r in lab_routes(plan, topo, node.name) if r.dev == TUNNEL_DEVICE}
        )
        for owner in owners:
            rows.append(
                Row(
                    "ipip-data",
                    f"{node.name} -> pods of {owner}",
                    "reply",
                    "kernel has no ipip module (tunl0 is an ifb stand-in)",
                    SKIP,
                )
            )
    return rows


def lab_context(state: LabState) -> tuple[ClusterPlan, Topology]:
    """Recompile the lab's cluster file and derive its topology, as `up` did."""
    plan = compile_cluster(load_cluster(Path(state.cluster))).plan
    return plan, plan_topology(plan, state.name)


def pod_check_rows(
    plan: ClusterPlan,
    topo: Topology,
    state: LabState,
    policy: bool = True,
    laps: Laps | None = None,
) -> list[Row]:
    """Pod rows (lab.podcheck) and the policy walkthrough; no pods is one failing row."""
    laps = laps or Laps()
    if not state.pods or not all(p.address for p in state.pods.values()):
        return [Row("pods", "all nodes", "pods made through the CNI plugin", "none", FAIL)]
    paths = Paths(plan, topo, state.pods, state.tunnel == "ifb")
    rows = pod_rows(paths, Path(state.root) / "run" / "udp-listener.log")
    laps.done(f"check: {len(rows)} pod rows")
    reach = reach_rows(state, paths)
    laps.done(f"check: {len(reach)} trace and intent rows")
    rows += reach
    if not policy:
        skipped = "not run (--skip-policy)"
        return [*rows, Row("policy", "seed walkthrough", "deny, then allow", skipped, SKIP)]
    walk = policy_rows(state, paths)
    laps.done(f"check: {len(walk)} policy walkthrough rows")
    return rows + walk


def lab_check(state: LabState, policy: bool = True, progress: Echo = quiet) -> list[Row]:
    """Return every row of the matrix for the running lab.

    With `policy` the seed walkthrough runs too: it applies rebuilt bundles to the nodes with
    pods for a moment and re-applies the lab's own bundle after. `progress` gets a line with
    the seconds of each step (the CLI prints them on stderr).
    """
    laps = Laps(progress)
    plan, topo = lab_context(state)
    rows = bgp_rows(state, topo)
    laps.done(f"check: {len(rows)} BGP session rows")
    routes = route_rows(plan, topo)
    laps.done(f"check: {len(routes)} route rows")
    underlay = underlay_rows(plan, topo)
    laps.done(f"check: {len(underlay)} underlay rows")
    pods = pod_check_rows(plan, topo, state, policy, laps)
    return rows + routes + underlay + ipip_rows(plan, topo, state) + pods


def table(rows: list[Row]) -> str:
    """Return the rows as a fixed-width table for people, with a summary line."""
    head = ("STATUS", "CHECK", "SUBJECT", "EXPECTED", "OBSERVED")
    cells = [head] + [(r.status, r.check, r.subject, r.expected, r.observed) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4] for c in cells]
    counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, SKIP)}
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    """Return the rows as JSON for machines."""
    return json.dumps([asdict(r) for r in rows], indent=2, sort_keys=True)


def failed(rows: list[Row]) -> bool:
    """Return whether any row is a mismatch."""
    return any(r.status == FAIL for r in rows)
