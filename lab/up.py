"""`calicc lab up`: build the cluster, wire its namespaces, start its routing, record it all.

Every step records what it made in the lab's state file before the next starts, so that
`calicc lab down` can remove a half-made lab after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

from calicc.compiler.build import build, load_cluster, plan_cluster
from calicc.compiler.errors import CaliccError
from calicc.compiler.plan import ClusterPlan
from calicc.lab.agent import AgentFailed, ApplyJob, agent_bird, apply_nodes, node_root
from calicc.lab.bird import start_bird
from calicc.lab.converge import wait_converged
from calicc.lab.expect import needs_tunnel_device
from calicc.lab.filepods import file_pods, read_pods_file, with_namespace_labels
from calicc.lab.matrix import Paths, first_probe
from calicc.lab.network import create_topology, lab_namespaces
from calicc.lab.parallel import JobsFailed, run_each
from calicc.lab.peers import refresh_pod_nodes
from calicc.lab.pods import create_pods, default_pod_nodes, plan_pods
from calicc.lab.probe import ping
from calicc.lab.progress import Echo, Progress, quiet
from calicc.lab.routing import Daemons, add_tunnel_device, start_gobgp_reflectors
from calicc.lab.runtime import CniFailed
from calicc.lab.speakers import played_by_gobgp, unknown_peers
from calicc.lab.state import LabState, Proc, load_state
from calicc.lab.topology import Topology, plan_topology
from calicc.lab.tor import tor_config
from calicc.lab.wait import WaitTimeout, poll
from calicc.trace.pods import PodsFile

PING_WAIT_S = 15.0
SOCKET_MAX = 107  # sun_path holds 108 bytes with the final NUL


class LabError(CaliccError):
    """The lab cannot be brought up as asked (the message says why and what to do)."""


def _record(state: LabState, daemons: Daemons) -> None:
    for node, bird in daemons.birds.items():
        state.procs[f"bird:{node}"] = Proc(bird.pid, str(bird.sock))
    for peer, gob in daemons.gobgp.items():
        state.procs[f"gobgpd:{peer}"] = Proc(gob.pid, str(gob.conf))
    state.save()


def start_tors(plan: ClusterPlan, topo: Topology, root: Path, state: LabState) -> None:
    """Start a BIRD ToR for every external peer GoBGP does not play (lab/speakers.py)."""
    bgp = plan.spec.bgp
    for speaker in topo.speakers:
        entry = next(p for p in bgp.peers if str(p.peer_ip) == speaker.name)
        if played_by_gobgp(entry, bgp, state.gobgp_peers):
            continue
        conf = root / "speakers" / f"tor-{speaker.name}.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(tor_config(plan, speaker.primary.ip, entry.as_number))
        daemon = start_bird(speaker.ns, conf, root / "run", f"tor-{speaker.name}", detach=True)
        state.procs[f"tor:{speaker.name}"] = Proc(daemon.pid, str(daemon.sock))
        state.save()


def apply_agents(
    plan: ClusterPlan, topo: Topology, root: Path, state: LabState, progress: Echo = quiet
) -> None:
    """Run `calicc apply --root` in every node namespace and record the BIRD each starts.

    Every node is applied (several at once) even when one fails; the BIRDs that started are
    recorded either way, so `down` stops them.

    Raises:
        AgentFailed: naming every node whose apply failed.
    """
    state.agent = True
    jobs = [
        ApplyJob(
            node.name,
            topo.node(node.name).ns,
            root / "rendered" / "nodes" / node.name,
            node_root(root, node.name),
            state.tunnel == "ifb",
        )
        for node in plan.nodes
    ]
    try:
        apply_nodes(jobs, Progress("nodes", len(jobs), "applied", progress))
    finally:
        record_birds(state, [j.node for j in jobs])


def record_birds(state: LabState, nodes: list[str]) -> None:
    """Record the BIRD the agent started on each of `nodes` (those without one are skipped)."""

    def find(node: str) -> Proc | None:
        try:
            return agent_bird(node_root(Path(state.root), node))
        except WaitTimeout:
            return None  # its apply failed before BIRD started

    for node, bird in zip(nodes, run_each(nodes, find, what="BIRD pid files"), strict=True):
        if bird is not None:
            state.procs[f"bird:{node}"] = bird
    state.save()


def _tunnels(plan: ClusterPlan, topo: Topology, state: LabState) -> None:
    if needs_tunnel_device(plan):
        namespaces = [host.ns for host in topo.nodes]
        kinds = set(run_each(namespaces, add_tunnel_device, what="tunnel devices"))
        state.tunnel = "ipip" if kinds == {"ipip"} else "ifb"
        state.save()


def _check_socket_paths(plan: ClusterPlan, root: Path) -> None:
    longest = max((node_root(root, n.name) for n in plan.nodes), key=lambda p: len(str(p)))
    sock = longest / "var/run/calicc/bird.ctl"
    if len(str(sock)) > SOCKET_MAX:
        raise LabError(f"{sock} is longer than a control socket path may be: use a shorter --base")


def lab_up(
    cluster: Path,
    name: str,
    root: Path,
    echo: Echo,
    pod_nodes: int | None = 0,
    *,
    progress: Echo = quiet,
    pods: bool = True,
    gobgp_peers: Collection[str] = (),
) -> LabState:
    """Bring lab `name` up from `cluster` under `root`; return its recorded state.

    `pod_nodes` > 0 gives pods to only that many nodes (see lab.pods.plan_pods), None as many
    as lab.pods.default_pod_nodes says (every node of a small cluster, 8 of a large). `echo` gets
    the result lines, `progress` the phase lines of long phases (the CLI sends them to stderr).
    `pods` False stops once the routing has converged: no pods, no pod ping (the routing rows of
    `lab check` still apply; its pod rows then report that there are none). `gobgp_peers`: the
    external peers (by address) GoBGP plays instead of a BIRD ToR (lab/speakers.py).

    Raises:
        LabError: a lab of that name is already up (namespaces or state exist), or a phase
            failed (the message names the nodes and says how to remove the half-made lab).
    """
    if load_state(root) is not None or lab_namespaces(name):
        raise LabError(f"lab {name} is already up: run `calicc lab down {cluster} --name {name}`")
    started = time.monotonic()
    inputs = load_cluster(cluster)
    plan = plan_cluster(inputs)
    pods_file = read_pods_file(inputs, [n.name for n in plan.nodes])  # its errors before any work
    _check_socket_paths(plan, root)
    unknown = unknown_peers(plan.spec.bgp, gobgp_peers)
    if unknown:
        known = ", ".join(str(p.peer_ip) for p in plan.spec.bgp.peers) or "none"
        raise LabError(
            f"--gobgp {', '.join(unknown)}: no bgp.peers entry has that peer_ip ({known})"
        )
    build(inputs, root / "rendered")  # the one writer: lock beside the cluster, then the tree
    state = LabState(
        name=name, cluster=str(cluster.resolve()), root=str(root), gobgp_peers=sorted(gobgp_peers)
    )
    state.save()
    topo = plan_topology(plan, name)
    try:
        _bring_up(plan, topo, state, echo, progress)
    except (AgentFailed, JobsFailed) as exc:
        raise LabError(f"{exc}\nrun `calicc lab down {cluster} --name {name}`") from exc
    except WaitTimeout as exc:
        raise LabError(f"lab {name} did not converge: {exc}; `calicc lab check` shows all") from exc
    state.timings["routes_installed_s"] = round(time.monotonic() - started, 3)
    state.save()
    echo(f"all routes installed {state.timings['routes_installed_s']:.2f} s after up started")
    if not pods:
        return state
    chosen = default_pod_nodes(plan) if pod_nodes is None else pod_nodes
    start_pods(plan, topo, state, started, echo=echo, pod_nodes=chosen, pods_file=pods_file)
    return state


def _bring_up(
    plan: ClusterPlan, topo: Topology, state: LabState, echo: Echo, progress: Echo
) -> None:
    """Wire the namespaces, start the speakers, apply every node and wait for convergence."""
    root = Path(state.root)
    phase = time.monotonic()
    create_topology(topo)
    made = len(lab_namespaces(topo.lab))
    progress(f"namespaces: {made} made ({time.monotonic() - phase:.0f} s)")
    echo(f"namespaces: {made} (prefix calicc-{topo.lab}.)")
    _tunnels(plan, topo, state)
    daemons = Daemons()
    try:
        start_gobgp_reflectors(
            plan, topo, root, daemons, detach=True, gobgp_peers=state.gobgp_peers
        )
        start_tors(plan, topo, root, state)
    finally:
        _record(state, daemons)
    apply_agents(plan, topo, root, state, progress)
    wait_converged(plan, topo, state, progress)


def start_pods(
    plan: ClusterPlan,
    topo: Topology,
    state: LabState,
    started: float,
    *,
    echo: Echo,
    pod_nodes: int,
    pods_file: PodsFile | None = None,
) -> None:
    """Make the test pods through the CNI plugin; time the first pod-to-pod ping.

    The lab's own pods first, then those of the cluster's pods file (lab/filepods.py); then
    the nodes with pods apply again, to read the other nodes' pods (lab/peers.py).
    """
    own = with_namespace_labels(plan_pods(plan, state.name, pod_nodes), pods_file)
    listed = file_pods(pods_file, state.name) if pods_file is not None else ()
    try:
        made = create_pods(state, own)
        made += create_pods(state, listed) if listed else []
        refresh_pod_nodes(state, topo)  # every pod in the other nodes' policy sets
    except (CniFailed, AgentFailed) as exc:
        raise LabError(f"{exc}\nrun `calicc lab down` for lab {state.name}") from exc
    echo(f"pods: {len(made)} made through the CNI plugin ({len(listed)} of the pods file)")
    paths = Paths(plan, topo, state.pods, state.tunnel == "ifb")
    probe = first_probe(paths)
    try:
        poll(lambda: ping(probe.src_ns, probe.target), PING_WAIT_S, probe.subject)
    except WaitTimeout as exc:
        raise LabError(f"no pod-to-pod ping in lab {state.name}: {exc}") from exc
    state.timings["first_pod_ping_s"] = round(time.monotonic() - started, 3)
    state.save()
    took = state.timings["first_pod_ping_s"]
    echo(f"first pod-to-pod ping ({probe.subject}) {took:.2f} s after up started")
