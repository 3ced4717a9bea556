"""Per-peer BGP options in the lab (root, real BIRD and GoBGP), proved by what the speakers do.

One lab for the module: node-1 and node-2 on 10.51.1.0/24, node-3 on 10.51.2.0/24 (one router
between them), AS 64512, a mesh whose restart time is set. The external speakers are BIRD ToRs
configured by calicc.lab.tor.tor_config (which mirrors each node's session: the AS it
presents, GTSM) and gobgpd (`--gobgp`), whose neighbors come from tor_peers:

- passive node-1 with keepalive 3 / hold 9 against the active ToR in the router namespace: it
  is Established, node-1 never opened the connection (its end is port 179; with the ToR's side
  shut down it waits in state Passive and dials nothing) and both ends run the 9 s hold time
  (node-1's keepalive 3 s), with graceful restart time 30 offered;
- TTL security across the router: node-3 with ttl_security 2 to a ToR on the other subnet is
  Established; with ttl_security 1 toward another ToR there, it never is (GTSM drops it);
- local AS against GoBGP: GoBGP expects the node's local_as_number and learns node-1's block
  with that AS as the whole path;
- import limit: GoBGP sends node-2 one route more than its limit of 2; BIRD disables the
  session (Disable, the default action);
- allow local as: a path carrying AS 64512 is accepted by node-1 (num_allowed_local_as 1) and
  refused by node-2 (loop prevention);
- reachable_by: node-2's multihop peer off every subnet is reached through BIRD's /32 via the
  gateway: the kernel route is BIRD's, and the session comes back up with no default route.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calicc.lab.bird import BirdDaemon, bgp_sessions, bird_rib, birdc, start_bird, stop_bird
from calicc.lab.gobgp import rib_paths, wait_neighbors
from calicc.lab.harness import BgpLab, bgp_lab
from calicc.lab.netns import ns_run
from calicc.lab.rib import RibPath
from calicc.lab.speakers import played_by_gobgp
from calicc.lab.tor import tor_config
from calicc.lab.wait import poll
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

TOR = "10.51.1.254"  # the router's own address on node-1's subnet: a ToR in the router
GTSM_OK, GTSM_SHORT = "10.51.1.100", "10.51.1.101"  # two hops from node-3
LOCAL_AS, LIMIT, ALLOW = "10.51.1.102", "10.51.1.103", "10.51.1.104"  # played by GoBGP
FAR = "10.52.0.100"  # off every subnet: hangs off the router
GATEWAY = "10.51.1.254"
GOBGP = (LOCAL_AS, LIMIT, ALLOW)
POOL_ROUTES = ("10.200.250.0/24", "10.200.251.0/24", "10.200.252.0/24")
CLUSTER = f"""\
name: peeropts
network_cidr: 10.200.0.0/16
block_size: 24
ipip_mode: Never
bgp:
  as_number: 64512
  fast_timers: true
  node_mesh_max_restart_time: 45
  peers:
    - peer_ip: {TOR}
      as_number: 65000
      node_selector: n == '1'
      passive: true
      keepalive_time: 3
      hold_time: 9
      max_restart_time: 30
      source_address: None
    - {{peer_ip: {GTSM_OK}, as_number: 65001, node_selector: n == '3', ttl_security: 2}}
    - {{peer_ip: {GTSM_SHORT}, as_number: 65002, node_selector: n == '3', ttl_security: 1}}
    - {{peer_ip: {LOCAL_AS}, as_number: 65100, node_selector: n == '1', local_as_number: 65111}}
    - {{peer_ip: {LIMIT}, as_number: 65200, node_selector: n == '2', import_limit: 2}}
    - {{peer_ip: {ALLOW}, as_number: 65300, node_selector: n == '1', num_allowed_local_as: 1}}
    - {{peer_ip: {ALLOW}, as_number: 65300, node_selector: n == '2'}}
    - {{peer_ip: {FAR}, as_number: 65400, node_selector: n == '2', reachable_by: {GATEWAY}}}
nodes:
  - {{name: node-1, address: 10.51.1.11/24, labels: {{n: '1'}}, max_pods: 250}}
  - {{name: node-2, address: 10.51.1.12/24, labels: {{n: '2'}}, max_pods: 250}}
  - {{name: node-3, address: 10.51.2.13/24, labels: {{n: '3'}}, max_pods: 250}}
"""
WAIT = 20.0
GTSM_WATCH_S = 3.0  # how long the 1-hop session must stay short of Established
PASSIVE_WATCH_S = 2.5  # how long the passive node must not dial its ToR (retry: 1 s)


@dataclass
class Lab:
    bgp: BgpLab
    tors: dict[str, BirdDaemon]

    def sock(self, node: str) -> Path:
        return self.bgp.daemons.birds[node].sock

    def ns(self, name: str) -> str:
        """Return the namespace of node `name` or of the speaker at address `name`."""
        hosts = (*self.bgp.topo.nodes, *self.bgp.topo.speakers)
        return next(h.ns for h in hosts if h.name == name)


def start_tors(lab: BgpLab, root: Path) -> dict[str, BirdDaemon]:
    """Start a BIRD ToR, configured by tor_config, for each peer GoBGP does not play."""
    bgp = lab.plan.spec.bgp
    tors: dict[str, BirdDaemon] = {}
    for speaker in lab.topo.speakers:
        entry = next(p for p in bgp.peers if str(p.peer_ip) == speaker.name)
        if played_by_gobgp(entry, bgp, GOBGP):
            continue
        conf = root / "speakers" / f"tor-{speaker.name}.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(tor_config(lab.plan, speaker.primary.ip, entry.as_number))
        tors[speaker.name] = start_bird(speaker.ns, conf, root / "run", f"tor-{speaker.name}")
    return tors


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    here = tmp_path_factory.mktemp("peeropts")
    cluster = here / "cluster.yaml"
    cluster.write_text(CLUSTER)
    with bgp_lab(cluster, here / "lab", f"o{uuid.uuid4().hex[:7]}", gobgp_peers=GOBGP) as bgp:
        tors = start_tors(bgp, here / "lab")
        try:
            yield Lab(bgp, tors)
        finally:
            for daemon in tors.values():
                stop_bird(daemon)


def session_state(sock: Path, name: str) -> str:
    return bgp_sessions(sock).get(name, "")


def wait_up(sock: Path, name: str) -> None:
    poll(
        lambda: session_state(sock, name).startswith("Established"),
        WAIT,
        f"{name} Established",
        last=lambda: birdc(sock, "show", "protocols", "all", name),
    )


def timer(details: str, name: str) -> int:
    """Return the configured length of BIRD's timer `name` ("Hold timer: 4.2/9" gives 9)."""
    found = re.search(rf"{name} timer:\s+\S+/(\d+)", details)
    assert found, details
    return int(found.group(1))


def gobgp_add(ns: str, prefix: str, *attributes: str) -> None:
    ns_run(
        ns, ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", prefix, *attributes]
    )


def test_passive_node_with_its_timers_against_an_active_tor(lab: Lab) -> None:
    sock = lab.sock("node-1")
    name = "Node_" + TOR.replace(".", "_")
    wait_up(sock, name)
    mine = birdc(sock, "show", "protocols", "all", name)
    assert timer(mine, "Hold") == 9
    assert timer(mine, "Keepalive") == 3
    theirs = birdc(lab.tors[TOR].sock, "show", "protocols", "all", "node_10_51_1_11")
    assert timer(theirs, "Hold") == 9  # negotiated: the lower of 9 and the ToR's 240
    assert re.search(r"Restart time:\s+30\b", theirs), theirs  # the node's graceful restart
    sockets = ns_run(lab.ns("node-1"), ["ss", "-Htn", "state", "established", "dst", TOR])
    assert "10.51.1.11:179 " in sockets.stdout, sockets.stdout  # the ToR connected to node-1
    # With the ToR's side shut down, node-1 waits ("Passive") and never dials it (its connect
    # retry is 1 s), until the ToR comes back and connects.
    tor, back = lab.tors[TOR].sock, "node_10_51_1_11"
    birdc(tor, "disable", back)
    try:
        poll(lambda: session_state(sock, name).startswith("Passive"), WAIT, f"{name} waits")
        watch_until = time.monotonic() + PASSIVE_WATCH_S
        while time.monotonic() < watch_until:
            dialed = ns_run(lab.ns("node-1"), ["ss", "-Htn", "state", "syn-sent", "dst", TOR])
            assert not dialed.stdout.strip(), dialed.stdout
            assert session_state(sock, name).startswith("Passive")
            time.sleep(0.1)
    finally:
        birdc(tor, "enable", back)
    wait_up(sock, name)


def test_mesh_sessions_offer_the_mesh_restart_time(lab: Lab) -> None:
    wait_up(lab.sock("node-2"), "Mesh_10_51_1_11")
    details = birdc(lab.sock("node-2"), "show", "protocols", "all", "Mesh_10_51_1_11")
    assert re.search(r"Restart time:\s+45\b", details), details  # node-1's, as node-2 heard it


def test_ttl_security_across_a_router(lab: Lab) -> None:
    sock = lab.sock("node-3")
    wait_up(sock, "Node_10_51_1_100")
    wait_up(lab.tors[GTSM_OK].sock, "node_10_51_2_13")
    # Toward the other ToR, across the same router, the node says 1 hop: packets arrive with
    # TTL 254, under the 255 GTSM then demands. Connecting may succeed (BIRD's listening socket
    # takes any TTL), but no OPEN message gets through: the session, which would take
    # milliseconds over the same path, stays short of Established (OpenSent, here).
    short = "Node_10_51_1_101"
    watch_until = time.monotonic() + GTSM_WATCH_S
    while time.monotonic() < watch_until:
        state = session_state(sock, short)
        assert not state.startswith("Established"), birdc(sock, "show", "protocols", "all", short)
        assert not session_state(lab.tors[GTSM_SHORT].sock, "node_10_51_2_13").startswith("Est")
        time.sleep(0.2)
    assert state, f"node-3 has no session {short}"


def test_gobgp_expects_and_sees_the_local_as(lab: Lab) -> None:
    ns = lab.ns(LOCAL_AS)
    assert wait_neighbors(ns, WAIT) == {"10.51.1.11": "Established"}
    block = str(lab.bgp.plan.node("node-1").blocks[0].cidr)

    def learned() -> RibPath | None:
        return next((p for p in rib_paths(ns) if p.prefix == block), None)

    path = poll(learned, WAIT, f"GoBGP learns {block}")
    assert path.as_path == (65111,)  # the local AS alone, not 64512
    assert path.next_hop == "10.51.1.11"


def test_import_limit_disables_the_session(lab: Lab) -> None:
    sock, name = lab.sock("node-2"), "Node_10_51_1_103"
    ns = lab.ns(LIMIT)
    assert wait_neighbors(ns, WAIT) == {"10.51.1.12": "Established"}
    wait_up(sock, name)
    for prefix in POOL_ROUTES:  # three routes for a limit of two
        gobgp_add(ns, prefix)

    def disabled() -> str | None:
        info = birdc(sock, "show", "protocols", name)
        return info if re.search(rf"{name}\s+BGP\s+\S+\s+down\b", info) else None

    poll(disabled, WAIT, f"{name} disabled by its import limit")
    details = birdc(sock, "show", "protocols", "all", name)
    assert "Last error:       Automatic shutdown: Route limit exceeded" in details, details
    assert re.search(r"Import limit:\s+2 \[HIT\]\n\s+Action:\s+disable", details), details
    assert not any(p.prefix in POOL_ROUTES for p in bird_rib(sock))


def test_allow_local_as_accepts_a_path_with_the_node_s_as(lab: Lab) -> None:
    ns = lab.ns(ALLOW)
    assert sorted(wait_neighbors(ns, WAIT)) == ["10.51.1.11", "10.51.1.12"]
    prefix = "10.200.253.0/24"
    gobgp_add(ns, prefix, "aspath", "64512")

    def at_node_1() -> RibPath | None:
        return next((p for p in bird_rib(lab.sock("node-1")) if p.prefix == prefix), None)

    path = poll(at_node_1, WAIT, f"node-1 accepts {prefix} despite AS 64512 on its path")
    assert path.as_path == (65300, 64512)
    # node-2 got the same path over an Established session and refused it (loop).
    assert session_state(lab.sock("node-2"), "Node_10_51_1_104").startswith("Established")
    assert not any(p.prefix == prefix for p in bird_rib(lab.sock("node-2")))


def test_reachable_by_routes_the_session_through_the_gateway(lab: Lab) -> None:
    sock, name, ns = lab.sock("node-2"), "Node_10_52_0_100", lab.ns("node-2")
    wait_up(sock, name)
    routes = json.loads(ns_run(ns, ["ip", "-j", "route", "show", f"{FAR}/32"]).stdout)
    assert [(r["gateway"], r["protocol"]) for r in routes] == [(GATEWAY, "bird")]
    ns_run(ns, ["ip", "route", "del", "default"])
    try:
        birdc(sock, "restart", name)
        wait_up(sock, name)  # through BIRD's /32 alone
    finally:
        ns_run(ns, ["ip", "route", "replace", "default", "via", GATEWAY])
