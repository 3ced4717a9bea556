"""Real BIRD 2 with calicc's dual-stack bird.conf: one daemon, IPv4 and IPv6 sessions.

Three node namespaces on one bridge (in a hub namespace), each with an IPv4 and an IPv6
address (nodad: no wait for duplicate address detection). The test plans the cluster and
renders each node's bird.conf with the BIRD renderer itself (written before the build rendered
IPv6; `calicc build` renders the same). Every node must hold both families' sessions Established and
the other nodes' blocks of both families as `proto bird` routes via the owner's address of
that family on eth0: a next hop BIRD could not resolve would be installed as unreachable.
Own-block blackholes are routes.sh's and are not added; BIRD must not install them. The same
holds in an IPv6-only cluster with route reflectors (reflection keeps the owner's next hop) and
for an external peer of each family (a hand-written BIRD ToR with both addresses), which learns
every node's blocks of that family over the session of that family.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_bird
from calicc.lab.bird import BirdDaemon, start_bird, stop_bird, wait_established
from calicc.lab.netns import ns_run, veth_between
from calicc.lab.wait import poll
from tests.conftest import need_root, need_tool
from tests.support.clusters import plan_of

pytestmark = [pytest.mark.root, pytest.mark.tools]

DUAL = """\
name: dual
network_cidr: 10.244.0.0/16
network_cidr_v6: fd00:244::/56
ipip_mode: Never
bgp: {as_number: 64512, fast_timers: true}
nodes:
  - {name: node-a, address: 192.168.49.2/24, address_v6: "fd00:49::2/64"}
  - {name: node-b, address: 192.168.49.3/24, address_v6: "fd00:49::3/64"}
  - {name: node-c, address: 192.168.49.4/24, address_v6: "fd00:49::4/64"}
"""

TOR = """\
router id 192.168.49.254;
protocol device { scan time 10; }
protocol direct { ipv4; ipv6; interface "*"; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
protocol kernel kernel6 { ipv6 { import none; export where source = RTS_BGP; }; }
template bgp rack {
  local as 65001; multihop; connect delay time 0; connect retry time 1; error wait time 1, 5;
}
"""
SESSION = """\
protocol bgp {name} from rack {{
  neighbor {ip} as 64512; source address {local};
  {channel} {{ import all; export none; }};
}}
"""

V6_RR = """\
name: v6rr
network_cidr_v6: fd00:244::/56
bgp: {as_number: 64512, fast_timers: true}
nodes:
  - {name: rr-1, address_v6: "fd00:49::11/64", route_reflector_cluster_id: 1.0.0.1}
  - {name: rr-2, address_v6: "fd00:49::12/64", route_reflector_cluster_id: 1.0.0.1}
  - {name: w-1, address_v6: "fd00:49::21/64"}
  - {name: w-2, address_v6: "fd00:49::22/64"}
"""

RouteKey = tuple[str, str, str, str]  # dst, gateway, dev, type
Extra = dict[str, tuple[tuple[str, ...], str]]  # host name -> (addresses, bird.conf)


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root()
    need_tool("bird", "birdc")


def _wire(hosts: dict[str, tuple[str, ...]], make_ns: Callable[[str], str]) -> dict[str, str]:
    """Put each host in a namespace on the hub's bridge with its addresses; return them."""
    hub = make_ns("hub")
    ns_run(hub, ["ip", "link", "add", "br0", "type", "bridge"])
    ns_run(hub, ["ip", "link", "set", "br0", "up"])
    spaces = {}
    for name, addresses in hosts.items():
        ns = spaces[name] = make_ns(name)
        port = f"p-{name}"
        veth_between(ns, "eth0", hub, port)
        ns_run(hub, ["ip", "link", "set", port, "master", "br0"])
        for address in addresses:
            ns_run(ns, ["ip", "addr", "add", address, "dev", "eth0", "nodad"])
    return spaces


@pytest.fixture
def birds() -> Iterator[list[BirdDaemon]]:
    """The BIRD daemons this test started, each stopped by its PID afterwards."""
    started: list[BirdDaemon] = []
    yield started
    for daemon in started:
        stop_bird(daemon)


def _routes(ns: str, family: str) -> set[RouteKey]:
    args = ["ip", "-n", ns, "-j", family, "route", "show", "proto", "bird"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found: list[dict[str, Any]] = json.loads(out or "[]")
    return {
        (r["dst"], r.get("gateway", ""), r.get("dev", ""), r.get("type", "unicast")) for r in found
    }


def _expected(plan: ClusterPlan, me: str) -> set[RouteKey]:
    want = set()
    for peer in plan.nodes:
        if peer.name == me:
            continue
        if peer.address is not None:
            want |= {(str(b.cidr), str(peer.address.ip), "eth0", "unicast") for b in peer.blocks}
        if peer.address_v6 is not None:
            via = str(peer.address_v6.ip)
            want |= {(str(b.cidr), via, "eth0", "unicast") for b in peer.blocks_v6}
    return want


def _start(
    tmp_path: Path,
    text: str,
    make_ns: Callable[[str], str],
    birds: list[BirdDaemon],
    extra: Callable[[ClusterPlan], Extra] | None = None,
) -> tuple[ClusterPlan, dict[str, str], dict[str, dict[str, str]]]:
    """Plan `text`, wire its nodes, start BIRD on each; return the plan, namespaces, sessions.

    `extra(plan)` adds hosts that are no nodes (an external peer): {name: (addresses, conf)}.
    """
    plan = plan_of(tmp_path, text)
    hosts = {
        n.name: tuple(str(a) for a in (n.address, n.address_v6) if a is not None)
        for n in plan.nodes
    }
    confs = {n.name: render_bird(plan, n) for n in plan.nodes}
    for name, (addresses, conf_text) in (extra(plan) if extra else {}).items():
        hosts[name], confs[name] = addresses, conf_text
    spaces = _wire(hosts, make_ns)
    for name, conf_text in confs.items():
        conf = tmp_path / name / "bird.conf"
        conf.parent.mkdir()
        conf.write_text(conf_text, encoding="utf-8")
        birds.append(start_bird(spaces[name], conf, tmp_path / "run", name))
    by_ns = {d.ns: wait_established(d.sock) for d in birds}
    return plan, spaces, {name: by_ns[ns] for name, ns in spaces.items()}


def _all_routes(ns: str) -> set[RouteKey]:
    return _routes(ns, "-4") | _routes(ns, "-6")


def _check_routes(
    plan: ClusterPlan, spaces: dict[str, str], per_node: int, hosts: tuple[str, ...] = ()
) -> None:
    """Every node and host holds exactly the other nodes' blocks, via the owner's address."""
    for name in (*(n.name for n in plan.nodes), *hosts):
        ns, want = spaces[name], _expected(plan, name)
        assert name in hosts or len(want) == per_node

        def have(ns: str = ns, want: set[RouteKey] = want) -> set[RouteKey] | None:
            routes = _all_routes(ns)
            return routes if want <= routes else None

        routes = poll(
            have,
            15.0,
            f"block routes in {name}",
            last=lambda ns=ns: repr(sorted(_all_routes(ns))),  # type: ignore[misc]
        )
        assert routes == want  # nothing else: no own block, no unreachable route


def test_dual_stack_mesh_both_families(
    tmp_path: Path, make_ns: Callable[[str], str], birds: list[BirdDaemon]
) -> None:
    plan, spaces, sessions = _start(tmp_path, DUAL, make_ns, birds)
    assert sorted(sessions["node-a"]) == [
        "Mesh_192_168_49_3",
        "Mesh_192_168_49_4",
        "Mesh_fd00_49__3",
        "Mesh_fd00_49__4",
    ]
    _check_routes(plan, spaces, per_node=8)  # 2 blocks of each family on each of 2 peers


def test_ipv6_only_route_reflectors_keep_the_owner_next_hop(
    tmp_path: Path, make_ns: Callable[[str], str], birds: list[BirdDaemon]
) -> None:
    plan, spaces, sessions = _start(tmp_path, V6_RR, make_ns, birds)
    assert sorted(sessions["w-1"]) == ["RR_fd00_49__11", "RR_fd00_49__12"]
    assert sorted(sessions["rr-1"]) == [
        "RRClient_fd00_49__21",
        "RRClient_fd00_49__22",
        "RR_fd00_49__12",
    ]
    _check_routes(plan, spaces, per_node=6)  # 2 IPv6 blocks on each of 3 peers


def _tor_config(plan: ClusterPlan) -> str:
    """Return the external peer's bird.conf: a session per node and family, learning all."""
    text = TOR
    for node in plan.nodes:
        for ip, local, channel in (
            (node.address, "192.168.49.254", "ipv4"),
            (node.address_v6, "fd00:49::fe", "ipv6"),
        ):
            if ip is not None:
                name = f"{node.name.replace('-', '_')}_{channel}"
                text += SESSION.format(name=name, ip=ip.ip, local=local, channel=channel)
    return text


def test_external_peers_of_each_family(
    tmp_path: Path, make_ns: Callable[[str], str], birds: list[BirdDaemon]
) -> None:
    cluster = DUAL.replace(
        "fast_timers: true}",
        "fast_timers: true, peers: [{peer_ip: 192.168.49.254, as_number: 65001},"
        ' {peer_ip: "fd00:49::fe", as_number: 65001}]}',
    )

    def tor(plan: ClusterPlan) -> Extra:
        return {"tor": (("192.168.49.254/24", "fd00:49::fe/64"), _tor_config(plan))}

    plan, spaces, sessions = _start(tmp_path, cluster, make_ns, birds, tor)
    assert sorted(sessions["node-b"]) == [
        "Global_192_168_49_254",
        "Global_fd00_49__fe",
        "Mesh_192_168_49_2",
        "Mesh_192_168_49_4",
        "Mesh_fd00_49__2",
        "Mesh_fd00_49__4",
    ]
    assert len(sessions["tor"]) == 6  # one per node and family
    _check_routes(plan, spaces, per_node=8, hosts=("tor",))  # the ToR: all 12 blocks
