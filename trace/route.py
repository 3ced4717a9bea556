"""Where a node sends a packet: the route, who installs it, the device, encapsulation and MTU.

The decision mirrors what the node is given:
- an address in one of the node's own blocks goes to the pod's veth (`<ip>/32 dev cali…`, the
  CNI plugin's route), or to the block's blackhole when no pod holds it;
- an address in another node's block of a VXLAN pool follows the node's static VXLAN route
  (contract/vxlan.py through the assembled manifest: the agent and routes.sh install it);
- any other block is BIRD's: learned as trace/bgp.py says, and installed by the node's
  calicc_kernel_export filter, per pool: through the tunnel (IPIP Always), direct when the next
  hop (the owner's address) is in the node's subnet else through the tunnel (CrossSubnet), or
  direct (no encapsulation);
- a node's own address goes over the underlay (on the link when in the node's subnet);
- anything else leaves by the node's default route (the underlay; not in the tree).
The device's MTU is the tunnel link's (node.json `links`) or the node's link MTU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from calicc.contract.names import TUNNEL_DEVICE, V4, VXLAN_DEVICE, VXLAN_V6_DEVICE
from calicc.contract.nodes_table import NodeRow
from calicc.trace.bgp import Learned, Speakers
from calicc.trace.node import PoolFact, TraceNode
from calicc.trace.view import Owner, TreeView

Address = IPv4Address | IPv6Address
UNDERLAY_DEVICE = "eth0"  # the node's interface when the tree does not name one
POOL_COMMENT = r"^\s*# pool {name} \([^)]*\): (.*)$"


@dataclass(frozen=True)
class Forward:
    """The node's forwarding decision for one destination address."""

    kind: str  # "local-pod", "blackhole", "vxlan", "bgp", "node", "underlay", "unroutable", "self"
    device: str | None
    via: Address | None
    encapsulation: str  # "none", "ipip" or "vxlan"
    route: str  # the route as `ip route` would print it
    installed_by: str
    why: str
    mtu: int  # the device's MTU
    dst_node: NodeRow | None = None
    pool: PoolFact | None = None
    learned: tuple[Learned, ...] = ()

    @property
    def routable(self) -> bool:
        """Return whether the packet leaves (or is delivered) rather than dropped here."""
        return self.kind not in ("blackhole", "unroutable")


def underlay_device(row: NodeRow) -> str:
    """Return the node's underlay interface (nodes.tsv `interface`, else eth0)."""
    return row.interface or UNDERLAY_DEVICE


def _node_ip(row: NodeRow, version: int) -> Address | None:
    return row.ip(version)


def _in_subnet(src: NodeRow, address: Address) -> bool:
    interface = src.address if address.version == V4 else src.address_v6
    return interface is not None and address in interface.network


def forward(
    view: TreeView, speakers: Speakers, src: NodeRow, dst: Address, pod_iface: str | None
) -> Forward:
    """Return how node `src` forwards a packet to `dst`.

    `pod_iface`: the host veth of the pod holding `dst` when it is a pod on `src` (trace/pods).
    """
    node = view.node(src.name)
    owner = view.owner(dst)
    host = dst.max_prefixlen
    if owner is not None and owner.row.name == src.name:
        if pod_iface is not None:
            return Forward(
                "local-pod", pod_iface, None, "none", f"{dst}/{host} dev {pod_iface} scope link",
                "the CNI plugin (at the pod's ADD)", f"{dst} is a pod on {src.name}",
                node.pod_mtu, src,
            )  # fmt: skip
        return Forward(
            "blackhole", None, None, "none", f"blackhole {owner.block}",
            "routes.sh (this node's block)",
            f"{dst} is in {src.name}'s block {owner.block} but no pod of the pods file holds it",
            node.link_mtu, src,
        )  # fmt: skip
    if owner is not None:
        pool = next(p for p in view.pools() if p.name == owner.pool)
        if pool.encapsulation == "vxlan":
            return _vxlan(node, src, owner, pool)
        return _bgp(view, speakers, src, owner, pool)
    return _outside(view, node, src, dst)


def _vxlan(node: TraceNode, src: NodeRow, owner: Owner, pool: PoolFact) -> Forward:
    dst, block = owner.row, owner.block
    routes = node.routes
    route = next((r for r in routes if r.dst == block and r.type == "unicast"), None)
    if route is None:
        return Forward(
            "unroutable", None, None, "vxlan", "-", "nobody",
            f"{src.name} has no route to {dst.name}'s block {block} of VXLAN pool {pool.name} "
            f"(one of the two has no VXLAN tunnel endpoint of this family)",
            node.link_mtu, dst, pool,
        )  # fmt: skip
    tunnel = route.dev in (VXLAN_DEVICE, VXLAN_V6_DEVICE)
    device = route.dev or underlay_device(src)
    text = f"{route.dst} via {route.via} dev {device}" + (" onlink" if route.onlink else "")
    why = f"pool {pool.name} is VXLAN {pool.mode}: " + (
        f"{dst.name} is outside {src.name}'s subnet, so through {device}"
        if tunnel and pool.mode == "CrossSubnet"
        else "through the tunnel"
        if tunnel
        else f"{dst.name} is in {src.name}'s subnet, so direct"
    )
    return Forward(
        "vxlan", device, route.via, "vxlan" if tunnel else "none", text,
        "the calicc agent and routes.sh (static VXLAN route from the node table)", why,
        node.device_mtu(device), dst, pool,
    )  # fmt: skip


def _bgp(view: TreeView, speakers: Speakers, src: NodeRow, owner: Owner, pool: PoolFact) -> Forward:
    node, dst, block = view.node(src.name), owner.row, owner.block
    version = pool.cidr.version
    ways = speakers.learned(src, dst, version)
    verdicts = [(x, speakers.rejected(x, src, dst, block, underlay_device(src))) for x in ways]
    learned = tuple(x for x, rejected in verdicts if rejected is None)
    next_hop = _node_ip(dst, version)
    if not learned or next_hop is None:
        sessions = ", ".join(s.name for s in speakers.of(src.name, version)) or "none"
        filtered = "; ".join(
            f"{x.text()} it is rejected by {no.text()}" for x, no in verdicts if no is not None
        )
        return Forward(
            "unroutable", None, None, "none", "-", "nobody",
            f"{src.name}'s BIRD learns no route to {dst.name}'s block {block}: "
            + (filtered if filtered else
               f"none of its sessions ({sessions}) leads to {dst.name}"),
            node.link_mtu, dst, pool,
        )  # fmt: skip
    same = _in_subnet(src, next_hop)
    tunnel = pool.encapsulation == "ipip" and (
        pool.mode == "Always" or (pool.mode == "CrossSubnet" and not same)
    )
    device = TUNNEL_DEVICE if tunnel else underlay_device(src)
    text = f"{block} via {next_hop} dev {device}" + (" onlink" if tunnel else "")
    if not tunnel and not same:
        text = f"{block} via {next_hop} (resolved through {src.name}'s route to {next_hop})"
    rule = re.search(POOL_COMMENT.format(name=re.escape(pool.name)), view.bird_conf(src.name), re.M)
    why = f"bird.conf calicc_kernel_export: pool {pool.name}: " + (
        rule.group(1) if rule else f"{pool.encapsulation} {pool.mode}"
    )
    if pool.mode == "CrossSubnet":
        subnet = src.address if version == V4 else src.address_v6
        where = "inside" if same else "outside"
        network = subnet.network if subnet else "-"
        why += f" ({dst.name}'s {next_hop} is {where} {src.name}'s subnet {network})"
    return Forward(
        "bgp", device, next_hop, "ipip" if tunnel else "none", text,
        f"BIRD on {src.name}, learned " + "; or ".join(x.text() for x in learned), why,
        node.device_mtu(device), dst, pool, learned,
    )  # fmt: skip


def _outside(view: TreeView, node: TraceNode, src: NodeRow, dst: Address) -> Forward:
    device = underlay_device(src)
    other = view.node_at(dst)
    if other is not None:
        same = _in_subnet(src, dst)
        how = "on the link" if same else f"through {src.name}'s default route (the underlay)"
        route = f"{dst} dev {device}" if same else f"default dev {device}"
        return Forward(
            "node", device, None, "none", route,
            "the node's network setup (not calicc)", f"{dst} is node {other.name}'s address: {how}",
            node.link_mtu, other,
        )  # fmt: skip
    return Forward(
        "underlay", device, None, "none", f"default dev {device}",
        "the node's network setup (not calicc)",
        f"{dst} is in no pool and no node's: it leaves by {src.name}'s default route",
        node.link_mtu,
    )  # fmt: skip
