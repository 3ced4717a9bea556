"""One trace: where a packet goes and whether it passes, hop by hop, with the deciding rules.

For a packet from SRC to DST (a protocol and port, or a ping):
1. the source node's route (trace/route.py): local, BGP, VXLAN, underlay, or nowhere;
2. the source node's tables for the packet as it leaves the pod (or the node): raw and mangle
   PREROUTING, filter FORWARD (OUTPUT for a node's own packet), nat POSTROUTING (SNAT);
3. encapsulated: the outer packet at the destination node's filter INPUT (IPIP or VXLAN from
   a node; Calico drops it from anything else);
4. the destination node's tables for the inner packet: raw and mangle PREROUTING, then filter
   FORWARD to a pod, or INPUT to the node itself.
The packet is the first of a connection (conntrack state NEW). Each table walk is the node's own
rules (trace/policy.py) run by trace/walk.py; a policy verdict names the rule that ended the
walk and, for a policy chain, the policy and its file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from calicc.contract.names import (
    ADMIN_EGRESS_PREFIX,
    ADMIN_INGRESS_PREFIX,
    BASELINE_EGRESS_PREFIX,
    BASELINE_INGRESS_PREFIX,
    EGRESS_PREFIX,
    HOST_EGRESS_PREFIX,
    HOST_INGRESS_PREFIX,
    INGRESS_PREFIX,
    TUNNEL_DEVICE,
    V4,
    VXLAN_DEVICE,
    VXLAN_PORT,
    VXLAN_V6_DEVICE,
)
from calicc.contract.nodes_table import NodeRow
from calicc.trace.bgp import Speakers
from calicc.trace.ends import Cluster, End
from calicc.trace.errors import TraceError
from calicc.trace.policy import Membership, NodeTables, node_tables
from calicc.trace.route import Forward, forward, underlay_device
from calicc.trace.walk import Packet, Step, Verdict, walk

Address = IPv4Address | IPv6Address
PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$", re.IGNORECASE)
PORT_MAX = 65535
IP_HEADER = {4: 20, 6: 40}
ICMP_HEADER = 8
ECHO_REQUEST = {4: 8, 6: 128}
ACCEPT_MARK = "0x10000"  # Calico's accept bit: a policy's allow rule sets it, then RETURNs
POLICY_CHAIN_PREFIXES = (  # a policy's own chains: walked without an allow, it took part
    INGRESS_PREFIX, EGRESS_PREFIX, ADMIN_INGRESS_PREFIX, ADMIN_EGRESS_PREFIX,
    BASELINE_INGRESS_PREFIX, BASELINE_EGRESS_PREFIX, HOST_INGRESS_PREFIX, HOST_EGRESS_PREFIX,
)  # fmt: skip


@dataclass(frozen=True)
class Port:
    """What the packet carries: a protocol and destination port, or a ping (icmp, no port)."""

    proto: str  # tcp, udp, sctp, icmp
    port: int | None

    def text(self) -> str:
        """Return e.g. `TCP/8080`, or `ping`."""
        return f"{self.proto.upper()}/{self.port}" if self.port is not None else "ping"


def parse_port(text: str | None) -> Port:
    """Return the packet's protocol and port from `PORT[/PROTO]` (None: a ping)."""
    if text is None:
        return Port("icmp", None)
    found = PORT.match(text)
    if found is None or not 1 <= int(found.group(1)) <= PORT_MAX:
        raise TraceError(f"port {text!r}: give PORT or PORT/PROTO, e.g. 8080/TCP or 53/UDP")
    return Port((found.group(2) or "tcp").lower(), int(found.group(1)))


@dataclass(frozen=True)
class Check:
    """One table walk on one node: where, the verdict, the rule that decided, its policy."""

    node: str
    hook: str  # e.g. "filter FORWARD"
    what: str  # e.g. "egress of shop/api-1"
    verdict: Verdict
    policy: str | None  # the policy (label and file:line) that decided, when one did

    @property
    def decided_by(self) -> Step | None:
        """Return the rule that decided (for an accept: the allow that set the accept mark)."""
        return _decided_by(self.verdict)

    @property
    def passed(self) -> bool:
        """Return whether the packet goes on (ACCEPT, or off a user chain)."""
        return self.verdict.verdict not in ("DROP", "REJECT")


@dataclass(frozen=True)
class Trace:
    """The whole answer for one packet."""

    src: End
    dst: End
    port: Port
    family: int
    route: Forward | None  # None: the source is outside the cluster (no node of ours routes it)
    checks: tuple[Check, ...]
    snat: Step | None
    path_mtu: int | None

    @property
    def allowed(self) -> bool:
        """Return whether the packet arrives: routable and passed by every check."""
        routable = self.route is None or self.route.routable
        return routable and all(c.passed for c in self.checks)

    @property
    def outcome(self) -> str:
        """Return "allowed", "denied" or "unroutable"."""
        if self.route is not None and not self.route.routable:
            return "unroutable"
        return "allowed" if self.allowed else "denied"

    @property
    def largest_ping(self) -> int | None:
        """Return the largest `ping -M do -s N` payload that passes (path MTU less headers)."""
        if self.path_mtu is None:
            return None
        return self.path_mtu - IP_HEADER[self.family] - ICMP_HEADER


class Tracer:
    """Answers traces over one cluster; keeps each node's tables and membership between them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.view = cluster.view
        self.speakers = Speakers(self.view.bird_conf, self.view.node_at)
        self._tables: dict[tuple[str, int], NodeTables] = {}
        self._sets: dict[str, Membership] = {}

    def tables(self, node: str, family: int) -> NodeTables:
        """Return the node's tables of `family`, its pods' endpoint chains included."""
        key = (node, family)
        if key not in self._tables:
            pods = self.cluster.pods_of(node)
            text = self.view.text(node, family, pods)
            self._tables[key] = node_tables(node, text, family)
        return self._tables[key]

    def sets(self, node: str) -> Membership:
        """Return the set membership on `node` (the cluster's ipsets, the cluster's pods).

        Every node holds the same sets with the same static members (policy.json's, filled from
        the node table: contract/assemble.py), so one oracle serves all, and a pod's selector
        sets are worked out once per trace session, not once per node.
        """
        if not self._sets:
            facts = self.view.node(node)
            self._sets[""] = Membership(facts.ipsets, self.cluster.pod_at, facts.knows_api)
        return self._sets[""]

    def trace(self, src: End, dst: End, port: Port) -> Trace:
        """Return the trace of one packet from `src` to `dst`."""
        family = dst.address.version
        packet = Packet(
            family=family, src=src.address, dst=dst.address,
            proto=_proto(port.proto, family), dport=port.port,
            icmp_type=ECHO_REQUEST[family] if port.port is None else None,
        )  # fmt: skip
        checks: list[Check] = []
        snat = None
        route = None
        if src.pod is not None and src.pod == dst.pod:
            route = _to_itself(src, self.view.node(src.pod.node).pod_mtu)
            return self._done(src, dst, port, route=route, checks=checks, snat=snat)
        if src.node is not None:
            dst_iface = (
                dst.pod.iface if dst.pod and dst.node and dst.node.name == src.node.name else None
            )
            route = forward(self.view, self.speakers, src.node, dst.address, dst_iface)
            out = self._leave(src, dst, packet, route, checks)
            snat = next((s for s in out.nat if s.action.startswith(("MASQUERADE", "SNAT"))), None)
            if not route.routable or not all(c.passed for c in checks) or route.kind == "local-pod":
                return self._done(src, dst, port, route=route, checks=checks, snat=snat)
            if src.node is not None and dst.node is not None and src.node.name == dst.node.name:
                return self._done(src, dst, port, route=route, checks=checks, snat=snat)
            if snat is not None:  # masqueraded: the far end sees the leaving device's address
                packet = packet.but(src=_masquerade(src.node, route, packet.family))
            leaves = self._tunnel_out(src.node, dst.node, route, packet.family, checks)
            if not leaves:
                return self._done(src, dst, port, route=route, checks=checks, snat=snat)
        if dst.node is not None:
            self._arrive(src, dst, packet, route, checks)
        return self._done(src, dst, port, route=route, checks=checks, snat=snat)

    def _leave(
        self, src: End, dst: End, packet: Packet, route: Forward, checks: list[Check]
    ) -> Verdict:
        """Walk the source node's tables; return the nat POSTROUTING walk."""
        assert src.node is not None
        node, family = src.node.name, packet.family
        nt = self.tables(node, family)
        local_dst = dst.kind == "node" and dst.node is not None and dst.node.name == node
        if src.pod is not None:
            out = packet.but(iif=src.pod.iface, oif=route.device, dst_local=local_dst)
            for early in ("raw PREROUTING", "mangle PREROUTING"):
                if not self._check(checks, nt, early, out, f"{src.pod.key} leaving"):
                    return _empty(out)
            hook = "filter INPUT" if local_dst else "filter FORWARD"
            what = f"egress of {src.pod.key}" + (
                f", ingress of {dst.pod.key}" if route.kind == "local-pod" and dst.pod else ""
            )
            verdict = self._check(checks, nt, hook, out, what)
        else:
            tunnels = (src.node.tunnel_address, src.node.tunnel_address_v6)
            on_oif = packet.src in tunnels if route.encapsulation != "none" else True
            out = packet.but(
                oif=route.device, src_local=True, dst_local=local_dst, src_on_oif=on_oif
            )
            verdict = self._check(checks, nt, "filter OUTPUT", out, f"node {node} sending")
        if verdict is None:
            return _empty(out)
        nat = walk(nt.tables, "nat", "POSTROUTING", out.but(mark=verdict.mark), self.sets(node))
        return nat

    def _tunnel_out(
        self, src: NodeRow, dst: NodeRow | None, route: Forward, family: int, checks: list[Check]
    ) -> bool:
        """Walk the source node's OUTPUT with the tunnel packet; return whether it leaves.

        The encapsulated packet is the node's own: host endpoint egress policy sees it (calicc
        accepts IPIP and VXLAN to cluster nodes before any host policy).
        """
        if route.encapsulation == "none" or dst is None:
            return True
        outer = _outer(route, src, dst, family, "")
        if outer is None:
            return True
        nt = self.tables(src.name, family)
        out = outer.but(iif=None, oif=underlay_device(src), src_local=True, dst_local=False)
        what = f"{route.encapsulation.upper()} packet to node {dst.name}"
        for hook in ("raw OUTPUT", "filter OUTPUT"):
            if self._check(checks, nt, hook, out, what) is None:
                return False
        return True

    def _arrive(
        self, src: End, dst: End, packet: Packet, route: Forward | None, checks: list[Check]
    ) -> None:
        """Walk the destination node's tables: the outer packet when tunnelled, then the inner."""
        assert dst.node is not None
        node, family = dst.node.name, packet.family
        nt = self.tables(node, family)
        underlay = underlay_device(dst.node)
        iif = underlay
        if route is not None and route.encapsulation != "none" and src.node is not None:
            iif = _tunnel_device(route.encapsulation, family)
            outer = _outer(route, src.node, dst.node, family, underlay)
            if outer is not None:
                what = f"{route.encapsulation.upper()} packet from node {src.node.name}"
                if self._check(checks, nt, "filter INPUT", outer, what) is None:
                    return
        inner = packet.but(iif=iif, oif=None, dst_local=dst.kind == "node")
        for early in ("raw PREROUTING", "mangle PREROUTING"):
            if self._check(checks, nt, early, inner, "arriving") is None:
                return
        if dst.pod is not None:
            inner = inner.but(oif=dst.pod.iface)
            self._check(checks, nt, "filter FORWARD", inner, f"ingress of {dst.pod.key}")
        elif dst.kind == "node":
            self._check(checks, nt, "filter INPUT", inner, f"node {node} receiving")

    def _check(
        self, checks: list[Check], nt: NodeTables, hook: str, packet: Packet, what: str
    ) -> Verdict | None:
        """Walk one hook ("filter FORWARD"); record it; return its verdict, None if it stopped.

        A raw or mangle walk is recorded only when it stopped the packet.
        """
        table, chain = hook.split(" ")
        if table not in nt.tables or chain not in nt.tables[table].chains:
            return _empty(packet)
        verdict = walk(nt.tables, table, chain, packet, self.sets(nt.node))
        check = Check(nt.node, f"{table} {chain}", what, verdict, _policy(verdict, nt))
        if table == "filter" or not check.passed:
            checks.append(check)
        return verdict if check.passed else None

    def _done(
        self, src: End, dst: End, port: Port, *, route: Forward | None, checks: list[Check],
        snat: Step | None,
    ) -> Trace:  # fmt: skip
        mtus = [route.mtu] if route is not None and route.routable else []
        for end in (src, dst):
            if end.pod is not None:
                mtus.append(self.view.node(end.pod.node).pod_mtu)
        path_mtu = min(mtus) if mtus else None
        family = dst.address.version
        return Trace(src, dst, port, family, route, tuple(checks), snat, path_mtu)


def _to_itself(pod: End, mtu: int) -> Forward:
    """Return the route of a pod's packet to its own address: it never leaves the pod."""
    return Forward(
        "self", "lo", None, "none", f"local {pod.address} dev lo (in the pod)",
        "the kernel (the pod's own address)",
        "the destination is the pod's own address: delivered inside the pod, no policy applies",
        mtu, pod.node,
    )  # fmt: skip


def _masquerade(node: NodeRow, route: Forward, family: int) -> Address:
    """Return the address a packet masqueraded out of `route`'s device leaves with."""
    if route.encapsulation != "none":
        tunnel = node.tunnel_address if family == V4 else node.tunnel_address_v6
        if tunnel is not None:
            return tunnel
    own = node.address if family == V4 else node.address_v6
    assert own is not None  # a node of a family has its address of that family
    return own.ip


def _proto(proto: str, family: int) -> str:
    return "icmpv6" if proto == "icmp" and family != V4 else proto


def _tunnel_device(encapsulation: str, family: int) -> str:
    if encapsulation == "ipip":
        return TUNNEL_DEVICE
    return VXLAN_DEVICE if family == V4 else VXLAN_V6_DEVICE


def _outer(route: Forward, src: NodeRow, dst: NodeRow, family: int, iif: str) -> Packet | None:
    """Return the tunnel packet between the two nodes' underlay addresses."""
    src_ip, dst_ip = src.ip(family), dst.ip(family)
    if src_ip is None or dst_ip is None:
        return None
    if route.encapsulation == "ipip":
        return Packet(
            family=family, src=src_ip, dst=dst_ip, proto="ipencap", iif=iif, dst_local=True
        )
    return Packet(
        family=family, src=src_ip, dst=dst_ip, proto="udp", dport=VXLAN_PORT,
        iif=iif, dst_local=True,
    )  # fmt: skip


def _empty(packet: Packet) -> Verdict:
    return Verdict("ACCEPT", None, (), packet.mark, ())


def _decided_by(verdict: Verdict) -> Step | None:
    """Return the rule that decided.

    For an accept, the one that set the accept mark (the policy's allow), else the accepting
    rule; for a drop, the dropping rule.
    """
    if verdict.verdict == "ACCEPT":
        marks = [s for s in verdict.steps if s.action.startswith(f"MARK {ACCEPT_MARK}/")]
        if marks:
            return marks[-1]
    return verdict.deciding


def _policy(verdict: Verdict, nt: NodeTables) -> str | None:
    """Return the policy (and file:line) whose rule decided.

    For a default deny: every policy the packet went through without an allow.
    """
    decided = _decided_by(verdict)
    if decided is not None and decided.chain in nt.sources:
        what, where = nt.sources[decided.chain]
        return f"{what} ({where})"
    if verdict.verdict == "ACCEPT":
        return None
    walked = [s.action.split(" ", 1)[1] for s in verdict.steps if s.action.startswith("jump ")]
    seen = [c for c in dict.fromkeys(walked) if c.startswith(POLICY_CHAIN_PREFIXES)]
    named = [f"{nt.sources[c][0]} ({nt.sources[c][1]})" for c in seen if c in nt.sources]
    if named:
        return "none of these allows it: " + "; ".join(named)
    return None
