"""Service IP advertisement in the lab (root, real tools), proved by what the speakers learn.

One lab, brought up once for the module with the real agent: two nodes in AS 64512 (a mesh),
a BIRD ToR in AS 65000 in the router namespace and GoBGP in AS 65100 (`--gobgp`), and the
service CIDRs of cluster.yaml's bgp.service_*. Then:

- the ToR's and GoBGP's RIBs hold every CIDR from both nodes, and no node's kernel has a route
  inside them (BIRD holds them; its kernel export takes BGP routes alone);
- with the stub Kubernetes API (tests/support/kubeapi.py) in the router namespace, a Service of
  externalTrafficPolicy Local whose EndpointSlice puts its endpoint on node-1 is learned as /32s
  (cluster, external and LoadBalancer IPs) from node-1 only; after the endpoint moves to
  node-2 (and each node's agent reconciles, `calicc apply --kubeconfig`), from node-2 only;
- with `calicc agent` running on both nodes (interval 30 s: only the API watch can wake it in
  time), the endpoint moving back to node-1 moves the /32s back within seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from calicc.lab.agent import ApplyJob, calicc_exe, node_root
from calicc.lab.bird import bird_rib
from calicc.lab.check import lab_context
from calicc.lab.down import lab_down
from calicc.lab.gobgp import rib_paths
from calicc.lab.netns import ns_run
from calicc.lab.network import lab_namespaces
from calicc.lab.rib import RibPath
from calicc.lab.state import LabState
from calicc.lab.topology import Topology
from calicc.lab.up import lab_up
from calicc.lab.wait import poll
from tests.conftest import need_root, need_tool
from tests.support.kubeapi import KubeApi
from tests.support.labkit import short_base

pytestmark = [pytest.mark.root, pytest.mark.tools]
TOR, GOBGP = "10.61.1.254", "10.61.1.100"
NODES = {"node-1": "10.61.1.11", "node-2": "10.61.1.12"}
CIDRS = ("10.96.0.0/16", "198.18.10.0/24", "198.18.20.0/24")  # 203.0.113/24: the lab's
HOSTS = ("10.96.0.10/32", "198.18.10.10/32", "198.18.20.10/32")  # the Service's, in the CIDRs
CLUSTER = f"""\
name: svc
network_cidr: 10.244.0.0/16
block_size: 26
ipip_mode: Never
bgp:
  as_number: 64512
  fast_timers: true
  peers:
    - {{peer_ip: {TOR}, as_number: 65000}}
    - {{peer_ip: {GOBGP}, as_number: 65100}}
  service_cluster_ips: [{CIDRS[0]}]
  service_external_ips: [{CIDRS[1]}]
  service_loadbalancer_ips: [{CIDRS[2]}]
nodes:
  - {{name: node-1, address: {NODES["node-1"]}/24}}
  - {{name: node-2, address: {NODES["node-2"]}/24}}
"""
WAIT = 20.0


@dataclass
class Lab:
    state: LabState
    topo: Topology
    root: Path
    kubeconfig: Path

    @property
    def tor_sock(self) -> Path:
        return Path(self.state.procs[f"tor:{TOR}"].match)  # the ToR's control socket

    @property
    def gobgp_ns(self) -> str:
        return next(s.ns for s in self.topo.speakers if s.name == GOBGP)

    def apply(self, node: str) -> list[str]:
        """Reconcile `node` once, reading the API (as the running agent does); return BIRD's
        changes (`bird: reconfigured` when an include changed)."""
        job = ApplyJob(
            node,
            self.topo.node(node).ns,
            self.root / "rendered" / "nodes" / node,
            node_root(self.root, node),
            self.state.tunnel == "ifb",
        )
        argv = [calicc_exe(), *job.argv(), "--kubeconfig", str(self.kubeconfig), "--json"]
        done = ns_run(job.ns, argv, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        changes: list[str] = json.loads(done.stdout)["changes"].get("bird", [])
        return changes

    def agent(self, node: str) -> subprocess.Popen[str]:
        """Start `calicc agent` for `node` in its namespace (30 s interval, the API watched)."""
        bundle = self.root / "rendered" / "nodes" / node
        args = ["agent", "--bundle", str(bundle), "--root", str(node_root(self.root, node))]
        args += ["--interval", "30", "--kubeconfig", str(self.kubeconfig), "--no-cni-socket"]
        args += ["--allow-tunnel-standin"] if self.state.tunnel == "ifb" else []
        return subprocess.Popen(
            ["ip", "netns", "exec", self.topo.node(node).ns, calicc_exe(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    here = tmp_path_factory.mktemp("services")
    cluster = here / "cluster.yaml"
    cluster.write_text(CLUSTER)
    name = f"s{uuid.uuid4().hex[:7]}"
    with short_base() as base:
        root = base / name
        try:
            state = lab_up(cluster, name, root, lambda _l: None, 0, pods=False, gobgp_peers=[GOBGP])
            topo = lab_context(state)[1]
            yield Lab(state, topo, root, here / "kubeconfig")
        finally:
            lab_down(name, root)
            assert lab_namespaces(name) == []


def kernel_routes(ns: str) -> list[dict[str, object]]:
    """Return every route of every table of namespace `ns`, both families."""
    found: list[dict[str, object]] = []
    for family in ("-4", "-6"):
        out = ns_run(ns, ["ip", family, "-j", "route", "show", "table", "all"]).stdout
        found += json.loads(out or "[]")
    return found


def service_routes(ns: str) -> list[dict[str, object]]:
    """Return the kernel routes of `ns` inside a service CIDR (there must be none)."""
    nets = [IPv4Network(c) for c in CIDRS]
    inside = []
    for route in kernel_routes(ns):
        dst = str(route.get("dst", ""))
        if dst in ("default", "") or ":" in dst:
            continue
        if any(IPv4Network(dst, strict=False).subnet_of(n) for n in nets):
            inside.append(route)
    return inside


def learned(paths: list[RibPath], prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """Return {prefix: the next hops it is learned from} for `prefixes`."""
    found: dict[str, set[str]] = {p: set() for p in prefixes}
    for path in paths:
        if path.prefix in found:
            found[path.prefix].add(path.next_hop)
    return found


def wait_learned(
    read: Callable[[], list[RibPath]], prefixes: tuple[str, ...], hops: set[str], what: str
) -> None:
    def probe() -> bool | None:
        table = learned(read(), prefixes)
        return True if all(v == hops for v in table.values()) else None

    poll(probe, WAIT, what)


def test_every_node_advertises_the_cidrs_and_installs_none(lab: Lab) -> None:
    both = set(NODES.values())
    wait_learned(lambda: bird_rib(lab.tor_sock), CIDRS, both, "the ToR learns the CIDRs")
    wait_learned(lambda: rib_paths(lab.gobgp_ns), CIDRS, both, "GoBGP learns the CIDRs")
    for node in NODES:
        assert service_routes(lab.topo.node(node).ns) == [], f"{node}'s kernel holds one"


def test_local_service_host_routes_follow_its_endpoint(lab: Lab) -> None:
    router = lab.topo.router_ns
    with KubeApi() as api:
        api.start(netns=router, host=TOR, port=6443)
        api.kubeconfig(lab.kubeconfig)
        api.put_service(
            "shop",
            "web",
            cluster_ips=["10.96.0.10"],
            external_ips=["198.18.10.10"],
            ingress_ips=["198.18.20.10"],
            kind="LoadBalancer",
            traffic_policy="Local",
        )
        api.put_endpoint_slice("shop", "web-1", "web", [("10.244.0.5", "node-1", True)])
        reconfigured = ["bird: reconfigured"]
        assert lab.apply("node-1") == reconfigured  # its include gained the /32s
        assert lab.apply("node-2") == []  # none for it: its include is unchanged
        assert lab.apply("node-1") == []  # no change, no birdc configure
        status = ns_run(
            lab.topo.node("node-1").ns,
            [calicc_exe(), "status", "--root", str(node_root(lab.root, "node-1"))],
        ).stdout
        assert "  cluster       10.96.0.0/16\n" in status
        assert f"  Local here    {', '.join(HOSTS)} (IPv4)\n" in status
        one, two = {NODES["node-1"]}, {NODES["node-2"]}
        wait_learned(lambda: bird_rib(lab.tor_sock), HOSTS, one, "ToR: /32s from node-1 only")
        wait_learned(lambda: rib_paths(lab.gobgp_ns), HOSTS, one, "GoBGP: /32s from node-1")
        api.put_endpoint_slice("shop", "web-1", "web", [("10.244.0.70", "node-2", True)])
        assert [lab.apply(node) for node in NODES] == [reconfigured, reconfigured]
        wait_learned(lambda: bird_rib(lab.tor_sock), HOSTS, two, "ToR: /32s from node-2 only")
        wait_learned(lambda: rib_paths(lab.gobgp_ns), HOSTS, two, "GoBGP: /32s from node-2")
        for node in NODES:
            assert service_routes(lab.topo.node(node).ns) == [], f"{node}'s kernel holds one"


def test_running_agents_move_the_host_routes_on_an_api_event(lab: Lab) -> None:
    with KubeApi() as api:
        api.start(netns=lab.topo.router_ns, host=TOR, port=6443)
        api.kubeconfig(lab.kubeconfig)
        api.put_service(
            "shop",
            "web",
            cluster_ips=["10.96.0.10"],
            external_ips=["198.18.10.10"],
            ingress_ips=["198.18.20.10"],
            kind="LoadBalancer",
            traffic_policy="Local",
        )
        api.put_endpoint_slice("shop", "web-1", "web", [("10.244.0.70", "node-2", True)])
        agents = {node: lab.agent(node) for node in NODES}
        try:
            two, one = {NODES["node-2"]}, {NODES["node-1"]}
            wait_learned(lambda: bird_rib(lab.tor_sock), HOSTS, two, "ToR: from node-2")
            start = time.monotonic()
            api.put_endpoint_slice("shop", "web-1", "web", [("10.244.0.5", "node-1", True)])
            wait_learned(lambda: bird_rib(lab.tor_sock), HOSTS, one, "ToR: moved to node-1")
            took = time.monotonic() - start
            print(f"endpoint moved: the ToR learns the /32s from the new node in {took:.2f} s")
            assert took < 10  # the agents' interval is 30 s: the watch woke them
            wait_learned(lambda: rib_paths(lab.gobgp_ns), HOSTS, one, "GoBGP: from node-1")
        finally:
            for proc in agents.values():
                proc.send_signal(signal.SIGTERM)
            logs = {node: proc.communicate(timeout=20)[0] for node, proc in agents.items()}
        for node, proc in agents.items():
            assert proc.returncode == 0, logs[node]
