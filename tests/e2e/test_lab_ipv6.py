"""IPv6 and dual stack in the lab (issue 13): the examples brought up with real BIRD, the real
agent and real pods, their IPv6 rows proved, then taken down (root, real tools).

- dual-stack-mesh: IPv6 sessions Established beside the IPv4 ones, every other node's IPv6
  blocks routed via the owner's IPv6 address, each node reaches the external namespace over
  IPv6; pods ping6 each other on a node and across nodes, a don't-fragment ping6 at the pod
  MTU passes and one byte more fails (payload MTU - 48), and NAT66 shows at the external
  namespace as the node's IPv6 address (a UDP listener records each sender's address).
- ipv6-rr: IPv6-only nodes with two in-cluster route reflectors: only IPv6 sessions (BIRD runs
  on nodes that have no IPv4 session), every block reflected with the owner's next hop.
- a dual-stack eBGP cluster with a ToR of each family on the lab router (two racks): the IPv6
  ToR holds IPv6 sessions with every node and installs every IPv6 block via its owner, so pods
  ping6 across racks unencapsulated.
- a dual-stack cluster with an off-cluster reflector of each family (gobgpd): the IPv6 one
  reflects every IPv6 block between the nodes over IPv6 sessions.
- ipv6-rr with pods: IPv6-only pods ping6 across nodes, the MTU and NAT66 rows pass.
- `lab apply` of a change that gives IPv4 nodes IPv6 refuses (the router has no IPv6 yet) and
  says to bring the lab down and up.
- dual-stack-vxlan-crosssubnet: within a rack IPv6 pod traffic goes direct over eth0, across
  racks over vxlan-v6.calico; pod MTU 1430 (VXLAN over IPv6 costs 70 bytes).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from calicc.compiler.plan import ClusterPlan
from calicc.lab.bird import kernel_routes
from calicc.lab.check import lab_context, underlay_rows
from calicc.lab.down import lab_down
from calicc.lab.expect import lab_routes
from calicc.lab.matrix import Paths
from calicc.lab.network import lab_namespaces
from calicc.lab.podcheck import pod_rows
from calicc.lab.reapply import lab_apply
from calicc.lab.state import LabState
from calicc.lab.topology import Topology
from calicc.lab.up import LabError, lab_up
from calicc.lab.verify import FAIL, PASS, Row, bgp_rows, route_rows
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import short_base

pytestmark = [pytest.mark.root, pytest.mark.tools]

DUAL = EXAMPLES / "dual-stack-mesh" / "cluster.yaml"
TOR_V6 = "fd00:60:1:0:ffff:ffff:ffff:ffff"  # the lab router's IPv6 address on rack r1
TORS = f"""\
name: tor6
network_cidr: 10.244.0.0/16
network_cidr_v6: fd00:244::/56
ipip_mode: Never
bgp:
  as_number: 64512
  node_to_node_mesh: false
  peers:
    - {{peer_ip: 10.60.1.254, as_number: 65000}}
    - {{peer_ip: "{TOR_V6}", as_number: 65000}}
nodes:
  - {{name: r1-n1, address: 10.60.1.11/24, address_v6: "fd00:60:1::11/64", as_number: 65011}}
  - {{name: r1-n2, address: 10.60.1.12/24, address_v6: "fd00:60:1::12/64", as_number: 65012}}
  - {{name: r2-n1, address: 10.60.2.11/24, address_v6: "fd00:60:2::11/64", as_number: 65021}}
"""
V6_RR = EXAMPLES / "ipv6-rr" / "cluster.yaml"
OFF_RR = """\
name: rr6
network_cidr: 10.200.0.0/16
network_cidr_v6: fd00:200::/56
ipip_mode: Never
bgp:
  as_number: 64512
  node_to_node_mesh: false
  peers:
    - {peer_ip: 10.40.0.100, as_number: 64512}
    - {peer_ip: "fd00:40::100", as_number: 64512}
nodes:
  - {name: node-1, address: 10.40.0.11/24, address_v6: "fd00:40::11/64"}
  - {name: node-2, address: 10.40.0.12/24, address_v6: "fd00:40::12/64"}
  - {name: node-3, address: 10.40.0.13/24, address_v6: "fd00:40::13/64"}
"""
VXLAN_CS = EXAMPLES / "dual-stack-vxlan-crosssubnet" / "cluster.yaml"
IPV6_IN_PARENS = re.compile(r"\([0-9a-f]*:[0-9a-f:]*\)")


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root()
    need_tool("bird", "birdc", "ping", "ip6tables")


@contextmanager
def lab(cluster: Path, pods: bool = True) -> Iterator[LabState]:
    """Bring a uniquely named lab up (with or without pods); take it down and check it is gone."""
    name = f"v{uuid.uuid4().hex[:7]}"
    with short_base() as base:
        root = base / name
        try:
            yield lab_up(cluster, name, root, lambda _line: None, 0, pods=pods)
        finally:
            lab_down(name, root)
            assert lab_namespaces(name) == []


def is_v6(row: Row) -> bool:
    """Return whether a pod or underlay row probes an IPv6 address (shown in parentheses)."""
    return bool(IPV6_IN_PARENS.search(row.subject))


def routing_rows(plan: ClusterPlan, topo: Topology, state: LabState) -> list[Row]:
    return bgp_rows(state, topo) + route_rows(plan, topo) + underlay_rows(plan, topo)


def assert_v6_routing(plan: ClusterPlan, topo: Topology, rows: list[Row]) -> None:
    """Every IPv6 session of the plan Established, every remote IPv6 block routed as expected."""
    assert [r for r in rows if r.status == FAIL] == []
    passed = {(r.check, r.subject, r.expected) for r in rows if r.status == PASS}
    sessions = [(n.name, s.name) for n in plan.nodes for s in n.sessions_v6]
    assert sessions
    for name, session in sessions:
        assert ("bgp", f"bird {name}: {session}", "Established") in passed
    for node in plan.nodes:
        v6 = [r for r in lab_routes(plan, topo, node.name) if r.dst.version == 6]
        others = sum(len(n.blocks_v6) for n in plan.nodes if n.name != node.name)
        assert len(v6) == others
        assert v6
        for route in v6:
            assert ("route", node.name, route.text) in passed
        underlay = f"{node.name} -> external (2001:db8:113::10)"
        assert ("underlay", underlay, "reply") in passed


def address_v6(plan: ClusterPlan, node: str) -> str:
    """Return node `node`'s IPv6 address (without prefix length)."""
    found = plan.node(node).address_v6
    assert found is not None
    return str(found.ip)


def test_dual_stack_mesh_routes_both_families_over_their_own_sessions() -> None:
    with lab(DUAL, pods=False) as state:
        plan, topo = lab_context(state)
        rows = routing_rows(plan, topo, state)
        assert_v6_routing(plan, topo, rows)
        bgp = [r for r in rows if r.check == "bgp"]
        assert len(bgp) == 3 * 2 * 2  # three nodes, two peers, one session per family
        v6 = [r for r in bgp if "_fd00_70__" in r.subject]
        assert len(v6) == 3 * 2
        route_texts = [r.expected for r in rows if r.check == "route" and "fd00:244" in r.expected]
        assert all(" via fd00:70::1" in t and " dev eth0 proto bird" in t for t in route_texts)


def test_ipv6_only_route_reflectors_carry_every_block_with_the_owners_next_hop() -> None:
    with lab(V6_RR, pods=False) as state:
        plan, topo = lab_context(state)
        assert all(n.address is None and not n.sessions for n in plan.nodes)
        assert sorted(k for k in state.procs) == sorted(f"bird:{n.name}" for n in plan.nodes)
        rows = routing_rows(plan, topo, state)
        assert_v6_routing(plan, topo, rows)
        bgp = [r.subject for r in rows if r.check == "bgp"]
        assert len([s for s in bgp if s.startswith(("bird rr-1:", "bird rr-2:"))]) == 2 * 4
        assert all(": RR_fd00_80__1" in s for s in bgp if s.startswith("bird worker-"))
        for row in rows:
            if row.check == "route" and row.expected.startswith("fd00:245"):
                owner = next(
                    r for r in lab_routes(plan, topo, row.subject) if r.text == row.expected
                )
                want = f"via {address_v6(plan, owner.owner)} dev eth0 proto bird"
                assert row.expected.endswith(want)


def test_an_ipv6_tor_on_the_router_learns_every_ipv6_block_and_routes_pods_across_racks(
    tmp_path: Path,
) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(TORS)
    with lab(cluster) as state:
        plan, topo = lab_context(state)
        assert {k for k in state.procs if k.startswith("tor:")} == {
            "tor:10.60.1.254",
            f"tor:{TOR_V6}",
        }
        rows = routing_rows(plan, topo, state)
        assert_v6_routing(plan, topo, rows)
        tor = [r for r in rows if r.subject.startswith(f"tor {TOR_V6}:")]
        assert [r.status for r in tor] == [PASS] * 3
        installed = {
            (r["dst"], r["gateway"])
            for r in kernel_routes(topo.router_ns, 6)
            if r.get("protocol") == "bird"
        }
        assert installed == {
            (str(b.cidr), address_v6(plan, n.name)) for n in plan.nodes for b in n.blocks_v6
        }
        paths = Paths(plan, topo, state.pods, standin=False)
        pods = [r for r in pod_rows(paths, Path(state.root) / "run" / "udp.log") if is_v6(r)]
        assert [r for r in pods if r.status != PASS] == []
        across = [r for r in pods if r.check == "pod-pod subnets"]
        # rack r1 to r2 and back, unencapsulated through the ToR
        assert {r.subject[:2] for r in across} == {"r1", "r2"}


def test_dual_stack_mesh_pods_ping6_across_nodes_at_the_pod_mtu_and_leave_by_nat66() -> None:
    with lab(DUAL) as state:
        plan, topo = lab_context(state)
        assert all(p.address_v6.startswith("fd00:244:") for p in state.pods.values())
        paths = Paths(plan, topo, state.pods, standin=False)
        rows = [r for r in pod_rows(paths, Path(state.root) / "run" / "udp.log") if is_v6(r)]
        assert [r for r in rows if r.status != PASS] == []
        checks = [r.check for r in rows]
        assert checks.count("pod-pod node") == 3
        assert checks.count("pod-pod nodes") == 3  # a ring over the three nodes
        assert checks.count("node-pod") == checks.count("pod-node") == 6
        mtu = [r for r in rows if r.check == "mtu"]
        pod_mtu = plan.nodes[0].pod_mtu
        assert pod_mtu == 1500  # no encapsulation in either family
        assert [(f"{pod_mtu}-byte" in r.subject, r.observed) for r in mtu[:2]] == [
            (True, "reply"),
            (False, "no reply"),
        ]
        assert all(" -> node-" in r.subject and "-a (fd00:244:" in r.subject for r in mtu)
        nat = {r.subject.split(" ")[0]: r.observed for r in rows if r.check == "egress-nat"}
        assert nat == {f"{n.name}-a": address_v6(plan, n.name) for n in plan.nodes}


def route_dev(ns: str, address: str) -> str:
    """Return the device the kernel of namespace `ns` sends `address` through."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "route", "get", address], capture_output=True, text=True, check=True
    ).stdout
    return str(json.loads(out)[0]["dev"])


def test_dual_stack_vxlan_crosssubnet_goes_direct_in_a_rack_and_over_vxlan_v6_across() -> None:
    with lab(VXLAN_CS) as state:
        plan, topo = lab_context(state)
        assert {n.pod_mtu for n in plan.nodes} == {1500 - 70}  # VXLAN over IPv6's overhead
        ns = topo.node("rack1-node1").ns
        same, other = state.pods["rack1-node2-a"], state.pods["rack2-node1-a"]
        assert route_dev(ns, same.address_v6) == "eth0"
        assert route_dev(ns, other.address_v6) == "vxlan-v6.calico"
        assert route_dev(ns, other.address) == "vxlan.calico"
        paths = Paths(plan, topo, state.pods, standin=False)
        rows = [r for r in pod_rows(paths, Path(state.root) / "run" / "udp.log") if is_v6(r)]
        assert [r for r in rows if r.status != PASS] == []
        assert any(r.check == "pod-pod subnets" for r in rows)
        assert any(r.check == "pod-pod nodes" for r in rows)
        mtu = [r for r in rows if r.check == "mtu"]
        assert [("1430-byte" in r.subject, r.observed) for r in mtu[:2]] == [
            (True, "reply"),
            (False, "no reply"),
        ]
        # the ring's rack1-node2 -> rack2-node1 pair: a full 1430-byte packet through the tunnel
        tunnel = [r for r in mtu if r.subject.startswith("rack1-node2-a -> rack2-node1-a")]
        assert [r.observed for r in tunnel] == ["reply", "no reply"]


def test_ipv6_only_pods_ping6_across_nodes_and_leave_by_nat66() -> None:
    with lab(V6_RR) as state:
        plan, topo = lab_context(state)
        assert all(p.address == p.address_v6 != "" for p in state.pods.values())
        assert state.timings["first_pod_ping_s"] >= state.timings["routes_installed_s"]
        paths = Paths(plan, topo, state.pods, standin=False)
        assert paths.families() == [6]
        rows = pod_rows(paths, Path(state.root) / "run" / "udp.log")
        assert rows
        assert all(is_v6(r) for r in rows)
        assert [r for r in rows if r.status != PASS] == []
        assert sum(r.check == "pod-pod nodes" for r in rows) == len(plan.nodes)
        assert sum(r.check == "mtu" for r in rows) == 2 * len(plan.nodes)
        nat = {r.subject.split(" ")[0]: r.observed for r in rows if r.check == "egress-nat"}
        assert nat == {f"{n.name}-a": address_v6(plan, n.name) for n in plan.nodes}


def test_an_ipv6_offcluster_reflector_reflects_every_ipv6_block(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(OFF_RR)
    with lab(cluster, pods=False) as state:
        plan, topo = lab_context(state)
        assert {k for k in state.procs if k.startswith("gobgpd:")} == {
            "gobgpd:10.40.0.100",
            "gobgpd:fd00:40::100",
        }
        rows = routing_rows(plan, topo, state)
        assert_v6_routing(plan, topo, rows)
        reflector = [r for r in rows if r.subject.startswith("gobgpd fd00:40::100:")]
        assert sorted(r.subject.rsplit(" ", 1)[1] for r in reflector if r.status == PASS) == [
            "fd00:40::11",
            "fd00:40::12",
            "fd00:40::13",
        ]


def test_lab_apply_refuses_ipv6_new_to_a_running_lab(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    v4_only = """\
name: rr6
network_cidr: 10.200.0.0/16
ipip_mode: Never
bgp:
  as_number: 64512
  node_to_node_mesh: false
  peers:
    - {peer_ip: 10.40.0.100, as_number: 64512}
nodes:
  - {name: node-1, address: 10.40.0.11/24}
  - {name: node-2, address: 10.40.0.12/24}
  - {name: node-3, address: 10.40.0.13/24}
"""
    cluster.write_text(v4_only)
    with lab(cluster, pods=False) as state:
        cluster.write_text(
            OFF_RR.replace('    - {peer_ip: "fd00:40::100", as_number: 64512}\n', "")
        )
        with pytest.raises(LabError, match=r"router address fd00:40::.*lab down.*lab up"):
            lab_apply(state, lambda _line: None)
