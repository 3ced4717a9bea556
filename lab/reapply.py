"""`calicc lab apply`: bring a running lab to its (edited) cluster file, as a rollout would.

The cluster is rebuilt into the lab's rendered tree (only changed files are rewritten); nodes
that appeared get their namespaces, tunnel device and pods; nodes that vanished lose their pods,
BIRD and namespace; every ToR gets its new configuration through `birdc configure`; then
`calicc apply` runs on every node. BIRD reconfigures in place, so sessions whose configuration
did not change stay up. New subnets or new off-cluster speakers need `lab down` and `lab up`.
Pods the cluster's pods file gained are made; a pod relabelled or dropped in the file keeps the
labels it was made with until `lab down` (a runtime passes labels at ADD only).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from calicc.compiler.build import build, load_cluster, plan_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.lab.agent import AgentFailed
from calicc.lab.bird import birdc
from calicc.lab.converge import wait_converged
from calicc.lab.expect import needs_tunnel_device
from calicc.lab.filepods import file_pods, read_pods_file, with_namespace_labels
from calicc.lab.names import ns_name
from calicc.lab.netns import ns_delete
from calicc.lab.network import add_nodes, lab_namespaces
from calicc.lab.peers import refresh_pod_nodes
from calicc.lab.pods import create_pods, delete_pods, plan_pods
from calicc.lab.procs import stop_pid
from calicc.lab.progress import Echo, quiet
from calicc.lab.routing import add_tunnel_device
from calicc.lab.state import LabState
from calicc.lab.topology import EXTERNAL_ROUTER_V6, Topology, plan_topology
from calicc.lab.tor import tor_config
from calicc.lab.up import LabError, apply_agents
from calicc.lab.wait import WaitTimeout
from calicc.lab.wiring import has_v6


def _fixed_parts(topo: Topology, existing: set[str]) -> None:
    """Raise LabError when the change needs more than node namespaces.

    That is: new subnets or speakers, or router addresses the lab was made without (a family
    new to a segment, or IPv6 new to the lab).
    """
    fixed = [s.ns for s in topo.subnets] + [h.ns for h in topo.speakers]
    missing = sorted(ns for ns in [*fixed, topo.router_ns, topo.external_ns] if ns not in existing)
    if not missing:
        missing = [f"router address {a}" for a in _missing_router_addresses(topo)]
    if missing:
        raise LabError(
            f"the change needs new subnets or speakers ({', '.join(missing)}): "
            f"run `calicc lab down` and `calicc lab up` for lab {topo.lab}"
        )


def _missing_router_addresses(topo: Topology) -> list[str]:
    """Return the gateway addresses `topo` gives the router that its namespace lacks."""
    wanted = [str(g) for s in topo.subnets for g in (s.gateway, s.gateway_v6) if g is not None]
    if has_v6(topo):
        wanted.append(str(EXTERNAL_ROUTER_V6.ip))
    done = subprocess.run(
        ["ip", "-n", topo.router_ns, "-j", "addr", "show"],
        capture_output=True,
        text=True,
        check=True,
    )
    held = {a["local"] for link in json.loads(done.stdout) for a in link.get("addr_info", [])}
    return [a for a in wanted if a not in held]


def remove_nodes(state: LabState, gone: list[str]) -> list[str]:
    """Delete the pods, BIRD and namespace of every node in `gone`; return what was done."""
    done = delete_pods(state, [p for p in state.pods if state.pods[p].node in gone])
    for node in gone:
        proc = state.procs.pop(f"bird:{node}", None)
        if proc is not None and stop_pid(proc.pid, proc.match):
            done.append(f"stopped bird:{node} (pid {proc.pid})")
    state.save()
    return done


def reconfigure_tors(plan: ClusterPlan, topo: Topology, state: LabState) -> list[str]:
    """Rewrite each lab ToR's configuration and let BIRD reload it when it changed."""
    done = []
    bgp = plan.spec.bgp
    for speaker in topo.speakers:
        proc = state.procs.get(f"tor:{speaker.name}")
        if proc is None:
            continue
        entry = next(p for p in bgp.peers if str(p.peer_ip) == speaker.name)
        conf = Path(state.root) / "speakers" / f"tor-{speaker.name}.conf"
        text = tor_config(plan, speaker.primary.ip, entry.as_number)
        if conf.read_text() != text:
            conf.write_text(text)
            birdc(Path(proc.match), "configure")
            done.append(f"reconfigured tor:{speaker.name}")
    return done


def lab_apply(state: LabState, echo: Echo, progress: Echo = quiet) -> list[str]:
    """Converge the running lab `state` to its cluster file; return what changed.

    `progress` gets the phase lines of the apply and the convergence (stderr from the CLI).

    Raises:
        LabError: the change cannot be applied in place, an agent failed, or no convergence.
    """
    inputs = load_cluster(Path(state.cluster))
    plan = plan_cluster(inputs)
    topo = plan_topology(plan, state.name)
    existing = set(lab_namespaces(state.name))
    _fixed_parts(topo, existing)
    report = build(inputs, Path(state.root) / "rendered")  # the one writer, lock included
    done = [f"rendered {len(report.written)} changed files"]
    wanted = {n.name for n in plan.nodes}
    gone = sorted({p.node for p in state.pods.values()} - wanted)
    done += remove_nodes(state, gone)
    for node in gone:
        ns_delete(ns_name(state.name, "node", node))
        done.append(f"removed node {node}")
    new = tuple(h for h in topo.nodes if h.ns not in existing)
    add_nodes(topo, new)
    if needs_tunnel_device(plan):
        for host in new:
            add_tunnel_device(host.ns)
    done += [f"added node {h.name}" for h in new]
    done += reconfigure_tors(plan, topo, state)
    try:
        apply_agents(plan, topo, Path(state.root), state, progress)
        wait_converged(plan, topo, state, progress)
    except (AgentFailed, WaitTimeout) as exc:
        raise LabError(f"lab {state.name} did not converge after the change: {exc}") from exc
    pods_file = read_pods_file(inputs, wanted)
    own = plan_pods(plan, state.name)
    fresh = [p for p in with_namespace_labels(own, pods_file) if p.node in {h.name for h in new}]
    listed = file_pods(pods_file, state.name) if pods_file is not None else ()
    fresh += [
        p for p in listed if p.name not in state.pods
    ]  # a pod the file gained, or on a new node
    done += [f"pod {p.name} {p.address}" for p in create_pods(state, fresh)]
    if fresh:
        try:
            refresh_pod_nodes(state, topo)  # the new pods in the other nodes' policy sets
        except AgentFailed as exc:
            raise LabError(f"lab {state.name}: applying the new pods failed: {exc}") from exc
    for line in done:
        echo(line)
    return done
