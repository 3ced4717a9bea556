"""Start the BGP side of a lab: BIRD on every node with peers, GoBGP speakers.

Used by `calicc lab up` and by the real-daemon tests, which share the same code path.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import BIRD_CONFIG, TUNNEL_DEVICE
from calicc.contract.services import SERVICE_INCLUDES
from calicc.lab.bird import BirdDaemon, start_bird, stop_bird
from calicc.lab.gobgp import GobgpDaemon, Neighbor, gobgp_config, start_gobgpd, stop_gobgpd
from calicc.lab.netns import ns_run
from calicc.lab.speakers import played_by_gobgp, reflects
from calicc.lab.topology import Host, Topology
from calicc.lab.tor import sessions_to, tor_router_id


@dataclass
class Daemons:
    """The routing daemons a lab started, so that they can be stopped by PID."""

    birds: dict[str, BirdDaemon] = field(default_factory=dict)
    gobgp: dict[str, GobgpDaemon] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop every daemon (each by its own PID)."""
        for daemon in self.birds.values():
            stop_bird(daemon)
        for gob in self.gobgp.values():
            stop_gobgpd(gob)
        self.birds.clear()
        self.gobgp.clear()


def add_tunnel_device(ns: str) -> str:
    """Make sure `ns` has an up tunl0: the kernel's IPIP device, or an ifb stand-in.

    With the ipip module loaded every namespace gets a tunl0 of its own; otherwise creating
    one is tried (which loads the module where it exists). A kernel without IPIP gets an ifb
    device named tunl0: `via X dev tunl0 onlink` routes can be installed and checked, but no
    IPIP packet can flow. Returns the device kind: "ipip" or "ifb" (the stand-in).
    """
    exists = ns_run(ns, ["ip", "link", "show", TUNNEL_DEVICE], check=False).returncode == 0
    if exists:
        kind = "ipip"
    else:
        create = ["ip", "link", "add", TUNNEL_DEVICE, "type", "ipip"]
        made = ns_run(ns, create, check=False).returncode == 0
        kind = "ipip" if made else "ifb"
        if not made:
            ns_run(ns, ["ip", "link", "add", TUNNEL_DEVICE, "type", "ifb"])
    ns_run(ns, ["ip", "link", "set", TUNNEL_DEVICE, "up"])
    return kind


def start_node_birds(
    plan: ClusterPlan, topo: Topology, files: dict[str, str], root: Path, daemons: Daemons
) -> None:
    """Write each node's rendered bird.conf under `root` and start BIRD where it has peers.

    Sessions of either family count: an IPv6-only node's BIRD holds only IPv6 sessions.
    """
    for node in plan.nodes:
        if not node.sessions and not node.sessions_v6:
            continue
        conf = root / "nodes" / node.name / BIRD_CONFIG
        conf.parent.mkdir(parents=True, exist_ok=True)
        text = files[f"nodes/{node.name}/{BIRD_CONFIG}"]
        conf.write_text(text, encoding="utf-8")
        for rel in SERVICE_INCLUDES.values():  # the agent's Local Service routes: none here
            if f'include "{rel}";' in text:
                (conf.parent / rel).parent.mkdir(exist_ok=True)
                (conf.parent / rel).write_text("", encoding="utf-8")
        host = topo.node(node.name)
        daemons.birds[node.name] = start_bird(host.ns, conf, root / "run", node.name)


def reflector_clients(
    plan: ClusterPlan, peer: Host, rr_client: bool = True
) -> tuple[Neighbor, ...]:
    """Return the nodes that open a session to the external speaker `peer`, as neighbors.

    Each at its address of the speaker's family, with the AS it presents to the speaker and
    GTSM when its session asks for it (ttl_security), as the lab's BIRD ToR mirrors them.
    """
    return tuple(
        Neighbor(ip, asn, rr_client, s.options.ttl_security if s.options else None)
        for ip, asn, s in sessions_to(plan, peer.primary.ip)
    )


def start_gobgp_reflectors(
    plan: ClusterPlan,
    topo: Topology,
    root: Path,
    daemons: Daemons,
    detach: bool = False,
    *,
    gobgp_peers: Collection[str] = (),
) -> None:
    """Start gobgpd for every external peer GoBGP plays (lab/speakers.py).

    One in the cluster's own AS is an off-cluster RR; one named in `gobgp_peers` a plain
    neighbor of the nodes. One at an IPv6 address listens there, takes the IPv6 sessions of
    the nodes and a router id derived from its address (lab.tor.tor_router_id).
    """
    spec_bgp = plan.spec.bgp
    for peer in topo.speakers:
        entry = next(p for p in spec_bgp.peers if str(p.peer_ip) == peer.name)
        if not played_by_gobgp(entry, spec_bgp, gobgp_peers):
            continue
        conf = root / "speakers" / f"gobgp-{peer.name}.toml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        port = entry.port or 179
        ip = peer.primary.ip
        clients = reflector_clients(plan, peer, reflects(entry, spec_bgp, gobgp_peers))
        text = gobgp_config(tor_router_id(ip), entry.as_number, port, clients, ip)
        conf.write_text(text, encoding="utf-8")
        log = root / "speakers" / f"gobgp-{peer.name}.log"
        daemons.gobgp[peer.name] = start_gobgpd(peer.ns, conf, log, detach)
