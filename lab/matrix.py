"""Which pod connectivity probes a lab runs and what each must show (pure, no I/O).

Pairs grow linearly with the cluster: each node's two pods; each node's first pod to the next
node's (a ring), plus one pair per ordered pair of subnets; node to pod and pod to node, locally
and to the next node; pod to the external namespace (NATed to the node address unless the pod's
pool has nat_outgoing false); the pod MTU across nodes. A probe whose path or return path
takes tunl0 while tunl0 is the ifb stand-in cannot carry packets: it is planned as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.contract.names import TUNNEL_DEVICE
from calicc.lab.expect import expected_routes
from calicc.lab.state import Pod
from calicc.lab.topology import Topology

STANDIN = "tunl0 is an ifb stand-in (no ipip module): IPIP packets cannot flow"
NO_FABRIC = "unencapsulated across subnets, and the lab router learns no pod routes (no ToR peer)"
ICMP_IP_HEADERS = 28


@dataclass(frozen=True)
class Probe:
    """One ping: from namespace `src_ns` to `target`, expected answered or not."""

    check: str
    subject: str
    src_ns: str
    target: str
    answered: bool = True
    size: int | None = None
    skip: str = ""  # why the probe cannot run here (then it is reported as skipped)


@dataclass(frozen=True)
class Paths:
    """What the probes need to know about a running lab."""

    plan: ClusterPlan
    topo: Topology
    pods: dict[str, Pod]
    standin: bool

    def first_pods(self) -> list[Pod]:
        """Return each node's `-a` pod, in node order."""
        return [self.pods[f"{n.name}-a"] for n in self.plan.nodes if f"{n.name}-a" in self.pods]

    def tunnel_dev(self, me: NodePlan, address: IPv4Address) -> str:
        """Return the device of `me`'s BIRD route towards `address` ("" if BIRD has none)."""
        for route in expected_routes(self.plan, me, self.topo.gateway(me.name)):
            if address in route.dst:
                return route.dev
        return ""

    def via_router(self, me: str, address: str) -> bool:
        """Return whether `me` sends pod `address` unencapsulated to the lab router, unknowing.

        True when the route goes to the router (another subnet) and no ToR speaker runs on the
        router, so it has no pod routes (ICP's second option needs one).
        """
        if any(s.ns == self.topo.router_ns for s in self.topo.speakers):
            return False
        gateway = self.topo.gateway(me)
        node = self.plan.node(me)
        routes = expected_routes(self.plan, node, gateway)
        ip = IPv4Address(address)
        return any(ip in r.dst and r.gateway == gateway and r.dev != TUNNEL_DEVICE for r in routes)

    def skip_reason(self, src: str, src_addr: str, dst: str, dst_addr: str, from_node: bool) -> str:
        """Return why packets between the two ends cannot flow in this lab ("" if they can)."""
        if self.over_standin(src, src_addr, dst, dst_addr, from_node):
            return STANDIN
        if src != dst and (
            self.via_router(src, dst_addr) or (not from_node and self.via_router(dst, src_addr))
        ):
            return NO_FABRIC
        return ""

    def over_standin(
        self, src: str, src_addr: str, dst: str, dst_addr: str, from_node: bool
    ) -> bool:
        """Return whether packets between the two ends would need the stand-in tunl0.

        `from_node` says the source is the node itself, so replies return over the underlay.
        """
        if not self.standin or src == dst:
            return False
        there = self.tunnel_dev(self.plan.node(src), IPv4Address(dst_addr)) == TUNNEL_DEVICE
        back = (
            not from_node
            and self.tunnel_dev(self.plan.node(dst), IPv4Address(src_addr)) == TUNNEL_DEVICE
        )
        return there or back

    def pool_nat(self, address: str) -> bool:
        """Return whether the pool holding `address` has nat_outgoing."""
        ip = IPv4Address(address)
        return next(p.nat_outgoing for p in self.plan.pools if ip in p.cidr)


def _pod_pair(paths: Paths, check: str, a: Pod, b: Pod, **kw: object) -> Probe:
    skip = paths.skip_reason(a.node, a.address, b.node, b.address, False)
    subject = f"{a.name} -> {b.name} ({b.address})"
    return Probe(check, subject, a.netns, b.address, skip=skip, **kw)  # type: ignore[arg-type]


def pod_pod_probes(paths: Paths) -> list[Probe]:
    """Pod to pod on one node, across nodes (ring) and across every ordered pair of subnets."""
    probes = [
        _pod_pair(paths, "pod-pod node", p, paths.pods[f"{p.node}-b"]) for p in paths.first_pods()
    ]
    firsts = paths.first_pods()
    pairs = [(firsts[i], firsts[(i + 1) % len(firsts)]) for i in range(len(firsts))]
    by_subnet: dict[str, Pod] = {}
    for pod in firsts:
        subnet = paths.plan.node(pod.node).subnet
        by_subnet.setdefault(str(subnet), pod)
    pairs += [(a, b) for a in by_subnet.values() for b in by_subnet.values() if a is not b]
    seen = set()
    for a, b in pairs:
        if a.node == b.node or (a.name, b.name) in seen:
            continue
        seen.add((a.name, b.name))
        same = paths.plan.node(a.node).subnet == paths.plan.node(b.node).subnet
        probes.append(_pod_pair(paths, "pod-pod nodes" if same else "pod-pod subnets", a, b))
    return probes


def node_pod_probes(paths: Paths) -> list[Probe]:
    """Each node to its own first pod and to the next node's; each pod to both nodes back."""
    firsts = paths.first_pods()
    probes = []
    for i, pod in enumerate(firsts):
        nxt = firsts[(i + 1) % len(firsts)]
        for target in dict.fromkeys([pod, nxt]):
            node = paths.plan.node(pod.node)
            addr = str(node.ipv4.ip)
            why = paths.skip_reason(pod.node, addr, target.node, target.address, True)
            subject = f"{pod.node} -> {target.name} ({target.address})"
            ns = paths.topo.node(pod.node).ns
            probes.append(Probe("node-pod", subject, ns, target.address, skip=why))
        for host in dict.fromkeys([pod.node, nxt.node]):
            addr = str(paths.plan.node(host).ipv4.ip)
            # pods to nodes are never NATed (cali-nat-outgoing skips all-hosts-net)
            skip = paths.skip_reason(pod.node, pod.address, host, addr, False)
            subject = f"{pod.name} -> {host} ({addr})"
            probes.append(Probe("pod-node", subject, pod.netns, addr, skip=skip))
    return probes


def mtu_probes(paths: Paths) -> list[Probe]:
    """A don't-fragment ping at the pod MTU passes and one byte more fails.

    Towards the next node's pod; when that path needs the tunl0 stand-in, towards the other pod
    of the same node instead (which still proves the pod interfaces' MTU).
    """
    firsts = paths.first_pods()
    probes = []
    for i, pod in enumerate(firsts):
        peer = firsts[(i + 1) % len(firsts)]
        if peer.node == pod.node or paths.skip_reason(
            pod.node, pod.address, peer.node, peer.address, False
        ):
            peer = paths.pods[f"{pod.node}-b"]
        mtu = paths.plan.node(pod.node).pod_mtu
        for size, ok in ((mtu, True), (mtu + 1, False)):
            subject = f"{pod.name} -> {peer.name}: {size}-byte packet, DF"
            probes.append(
                Probe("mtu", subject, pod.netns, peer.address, ok, size - ICMP_IP_HEADERS)
            )
    return probes


def first_probe(paths: Paths) -> Probe:
    """Return the pod-to-pod probe that times the lab's first ping: across nodes if it can run."""
    runnable = [p for p in pod_pod_probes(paths) if not p.skip]
    across = [p for p in runnable if p.check != "pod-pod node"]
    return (across or runnable)[0]
