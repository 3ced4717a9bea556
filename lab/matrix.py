"""Which pod connectivity probes a lab runs and what each must show (pure, no I/O).

Pairs grow linearly with the cluster: each node's two pods; each node's first pod to the next
node's (a ring), plus one pair per ordered pair of subnets; node to pod and pod to node, locally
and to the next node; pod to the external namespace (NATed to the node address unless the pod's
pool has nat_outgoing false); the pod MTU across nodes. A probe whose path or return path
takes tunl0 while tunl0 is the ifb stand-in cannot carry packets: it is planned as skipped.

Every probe list is of one address family (`version`, 4 by default): pods and nodes with an
address of that family take part, the same pairs by the same rules. IPv6 probes look like IPv4
ones; their subjects carry IPv6 addresses, and the MTU probe subtracts 48 header bytes (IPv6 40,
ICMPv6 8) rather than 28.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.contract.names import TUNNEL_DEVICE, V4
from calicc.lab.expect import lab_routes
from calicc.lab.state import Pod
from calicc.lab.topology import Topology

STANDIN = "tunl0 is an ifb stand-in (no ipip module): IPIP packets cannot flow"
NO_FABRIC = "unencapsulated across subnets, and the lab router learns no pod routes (no ToR peer)"
ICMP_IP_HEADERS = 28
ICMP_IP_HEADERS_V6 = 48  # IPv6 header 40 + ICMPv6 header 8


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

    def first_pods(self, version: int = 4) -> list[Pod]:
        """Return each node's `-a` pod that has an address of family `version`, in node order."""
        found = [self.pods.get(f"{n.name}-a") for n in self.plan.nodes]
        return [p for p in found if p is not None and p.address_of(version)]

    def families(self) -> list[int]:
        """Return the address families the lab's pods have (4, 6), in that order."""
        return [v for v in (4, 6) if any(p.address_of(v) for p in self.pods.values())]

    def node_address(self, node: str, version: int) -> str:
        """Return node `node`'s address of family `version` ("" if it has none)."""
        plan = self.plan.node(node)
        found = plan.address if version == V4 else plan.address_v6
        return str(found.ip) if found is not None else ""

    def tunnel_dev(self, me: NodePlan, address: object) -> str:
        """Return the device of `me`'s BIRD route towards `address` ("" if BIRD has none)."""
        ip = ip_address(str(address))
        for route in lab_routes(self.plan, self.topo, me.name):
            if route.dst.version == ip.version and ip in route.dst:
                return route.dev
        return ""

    def via_router(self, me: str, address: str) -> bool:
        """Return whether `me` sends pod `address` unencapsulated to the lab router, unknowing.

        True when the route goes to the router (another subnet) and no ToR speaker runs on the
        router, so it has no pod routes (ICP's second option needs one).
        """
        if any(s.ns == self.topo.router_ns for s in self.topo.speakers):
            return False
        ip = ip_address(address)
        gateway = self.topo.gateways(me).get(ip.version)
        routes = lab_routes(self.plan, self.topo, me)
        return any(
            r.dst.version == ip.version
            and ip in r.dst
            and r.gateway == gateway
            and r.dev != TUNNEL_DEVICE
            for r in routes
        )

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
        there = self.tunnel_dev(self.plan.node(src), dst_addr) == TUNNEL_DEVICE
        back = not from_node and self.tunnel_dev(self.plan.node(dst), src_addr) == TUNNEL_DEVICE
        return there or back

    def pool_nat(self, address: str) -> bool:
        """Return whether the pool holding `address` has nat_outgoing."""
        ip = ip_address(address)
        return next(
            p.nat_outgoing for p in self.plan.pools if p.version == ip.version and ip in p.cidr
        )


def _pod_pair(paths: Paths, check: str, a: Pod, b: Pod, version: int, **kw: object) -> Probe:
    src, dst = a.address_of(version), b.address_of(version)
    skip = paths.skip_reason(a.node, src, b.node, dst, False)
    subject = f"{a.name} -> {b.name} ({dst})"
    return Probe(check, subject, a.netns, dst, skip=skip, **kw)  # type: ignore[arg-type]


def pod_pod_probes(paths: Paths, version: int = 4) -> list[Probe]:
    """Pod to pod on one node, across nodes (ring) and across every ordered pair of subnets."""
    firsts = paths.first_pods(version)
    probes = [
        _pod_pair(paths, "pod-pod node", p, paths.pods[f"{p.node}-b"], version) for p in firsts
    ]
    pairs = [(firsts[i], firsts[(i + 1) % len(firsts)]) for i in range(len(firsts))]
    by_subnet: dict[str, Pod] = {}
    for pod in firsts:
        by_subnet.setdefault(paths.topo.segment(pod.node).ns, pod)
    pairs += [(a, b) for a in by_subnet.values() for b in by_subnet.values() if a is not b]
    seen = set()
    for a, b in pairs:
        if a.node == b.node or (a.name, b.name) in seen:
            continue
        seen.add((a.name, b.name))
        same = paths.topo.segment(a.node) == paths.topo.segment(b.node)
        check = "pod-pod nodes" if same else "pod-pod subnets"
        probes.append(_pod_pair(paths, check, a, b, version))
    return probes


def node_pod_probes(paths: Paths, version: int = 4) -> list[Probe]:
    """Each node to its own first pod and to the next node's; each pod to both nodes back."""
    firsts = [p for p in paths.first_pods(version) if paths.node_address(p.node, version)]
    probes = []
    for i, pod in enumerate(firsts):
        nxt = firsts[(i + 1) % len(firsts)]
        for target in dict.fromkeys([pod, nxt]):
            addr = paths.node_address(pod.node, version)
            dst = target.address_of(version)
            why = paths.skip_reason(pod.node, addr, target.node, dst, True)
            subject = f"{pod.node} -> {target.name} ({dst})"
            ns = paths.topo.node(pod.node).ns
            probes.append(Probe("node-pod", subject, ns, dst, skip=why))
        for host in dict.fromkeys([pod.node, nxt.node]):
            addr = paths.node_address(host, version)
            # pods to nodes are never NATed (cali-nat-outgoing skips all-hosts-net)
            skip = paths.skip_reason(pod.node, pod.address_of(version), host, addr, False)
            subject = f"{pod.name} -> {host} ({addr})"
            probes.append(Probe("pod-node", subject, pod.netns, addr, skip=skip))
    return probes


def mtu_probes(paths: Paths, version: int = 4) -> list[Probe]:
    """A don't-fragment ping at the pod MTU passes and one byte more fails.

    Towards the next node's pod; when that path needs the tunl0 stand-in, towards the other pod
    of the same node instead (which still proves the pod interfaces' MTU).
    """
    firsts = paths.first_pods(version)
    headers = ICMP_IP_HEADERS if version == V4 else ICMP_IP_HEADERS_V6
    probes = []
    for i, pod in enumerate(firsts):
        peer = firsts[(i + 1) % len(firsts)]
        src = pod.address_of(version)
        if peer.node == pod.node or paths.skip_reason(
            pod.node, src, peer.node, peer.address_of(version), False
        ):
            peer = paths.pods[f"{pod.node}-b"]
        mtu = paths.plan.node(pod.node).pod_mtu
        dst = peer.address_of(version)
        for size, ok in ((mtu, True), (mtu + 1, False)):
            subject = f"{pod.name} -> {peer.name} ({dst}): {size}-byte packet, DF"
            probes.append(Probe("mtu", subject, pod.netns, dst, ok, size - headers))
    return probes


def first_probe(paths: Paths) -> Probe:
    """Return the pod-to-pod probe that times the lab's first ping: across nodes if it can run.

    IPv4 first; a cluster whose pods have no IPv4 address takes an IPv6 probe.
    """
    for version in paths.families() or [4]:
        runnable = [p for p in pod_pod_probes(paths, version) if not p.skip]
        across = [p for p in runnable if p.check != "pod-pod node"]
        if across or runnable:
            return (across or runnable)[0]
    raise ValueError("no pod-to-pod probe can run in this lab")
