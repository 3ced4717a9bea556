"""BIRD 2 configuration (bird/bird.conf) for one node.

Route ownership (DESIGN: one owner per kernel route):
- blackholes for the node's own blocks: routes.sh / the agent; BIRD keeps its own blackholes
  only in its table, to advertise them, and never exports them to the kernel;
- block routes learned over BGP: BIRD (kernel protocol, `proto bird`);
- VXLAN block routes: routes.sh / the agent (static, no BGP needed), BIRD rejects them.
IPIP next hops use stock BIRD 2 filter attributes: onlink, then ifname "tunl0", then gw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network

from calicc.compiler.lock import net_key
from calicc.compiler.model.spec import EncapMode
from calicc.compiler.peering import Role, Session
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.contract.names import TUNNEL_DEVICE, VXLAN_DEVICE


@dataclass(frozen=True)
class KernelRule:
    """How learned routes of one pool reach the kernel."""

    pool: str
    cidr: IPv4Network | IPv6Network
    action: str  # tunnel | cross_subnet | static_vxlan | direct
    comment: str


@dataclass(frozen=True)
class BgpView:
    """One `protocol bgp`, as printed."""

    name: str
    description: str
    neighbor: str
    passive: bool
    multihop: str
    rr_client: str | None
    secret_include: str | None
    export: str
    next_hop: str | None


_ROLE_TEXT = {
    Role.MESH: "node-to-node mesh",
    Role.REFLECTOR: "in-cluster route reflector",
    Role.CLIENT: "route reflector client",
    Role.GLOBAL: "external peer of every node",
    Role.NODE: "external peer selected by node_selector",
}


def _kernel_rule(pool: PoolPlan) -> KernelRule:
    mode = pool.encap_mode
    if pool.encap == "vxlan":
        action, text = "static_vxlan", "VXLAN: routes.sh programs these routes, not BIRD"
    elif mode == EncapMode.ALWAYS:
        action, text = "tunnel", "IPIP Always: via the peer over tunl0 onlink"
    elif mode == EncapMode.CROSS_SUBNET:
        action, text = "cross_subnet", "IPIP CrossSubnet: direct in this subnet, else tunl0"
    else:
        action, text = "direct", "no encapsulation: via the node's link"
    return KernelRule(pool.name, pool.cidr, action, f"pool {pool.name} ({pool.cidr}): {text}")


def _export(session: Session) -> str:
    own = "calicc_own_block()"
    if session.reflects:
        own += " || (source = RTS_BGP && calicc_pool_route())"
    if session.extra_exports:
        own += " || net ~ [ " + ", ".join(str(n) for n in session.extra_exports) + " ]"
    return f"export where {own};"


@lru_cache(maxsize=1 << 16)
def _bgp_view(session: Session) -> BgpView:
    port = f" port {session.port}" if session.port else ""
    who = f"node {session.peer_node}" if session.peer_node else f"{session.peer_ip}"
    if session.next_hop_self:
        next_hop: str | None = "next hop self;"
    elif session.keep_next_hop:
        next_hop = "next hop keep;"
    else:
        next_hop = None
    return BgpView(
        name=session.name,
        description=f"{who} ({_ROLE_TEXT[session.role]})",
        neighbor=f"neighbor {session.peer_ip}{port} as {session.peer_as};",
        passive=session.passive,
        multihop=f"multihop {session.multihop};" if session.multihop else "multihop;",
        rr_client=(
            f"rr client; rr cluster id {session.rr_cluster_id};" if session.rr_cluster_id else None
        ),
        secret_include=session.secret_include,
        export=_export(session),
        next_hop=next_hop,
    )


def node_sessions(node: NodePlan) -> list[BgpView]:
    """Return the views of the node's BGP sessions (equal sessions share one view)."""
    return [_bgp_view(s) for s in node.sessions]


def _prefix_set(nets: list[IPv4Network] | list[IPv4Network | IPv6Network], suffix: str = "") -> str:
    return "[ " + ", ".join(f"{n}{suffix}" for n in nets) + " ]"


@lru_cache(maxsize=2)
def _cluster_view(cluster: ClusterPlan) -> dict[str, object]:
    """Return the part of bird.conf's context that is the same on every node (once a build)."""
    return {
        "cluster": cluster.name,
        "listen_port": cluster.spec.bgp.listen_port,
        "fast_timers": cluster.spec.bgp.fast_timers,
        "pool_routes": _prefix_set(sorted((p.cidr for p in cluster.pools), key=net_key), "+"),
        "node_subnets": _prefix_set(list(cluster.node_subnets), "+"),
        "kernel_rules": [_kernel_rule(p) for p in cluster.pools if not p.disabled],
        "tunnel_device": TUNNEL_DEVICE,
        "excluded_interfaces": ["cali*", TUNNEL_DEVICE, VXLAN_DEVICE, "kube-ipvs*"],
    }


def bird_view(cluster: ClusterPlan, node: NodePlan) -> dict[str, object]:
    """Return the template context for bird.conf."""
    extra = sorted({n for s in node.sessions for n in s.extra_exports})
    own = [b.cidr for b in node.blocks]
    return {
        **_cluster_view(cluster),
        "node": node,
        "own_blocks": _prefix_set(own),
        "own_blocks_within": _prefix_set(own, "+"),
        "blocks": node.blocks,
        "advertised": extra,
        "sessions": node_sessions(node),  # rendered one by one: compiler/render.py
        "snippets": node.snippets,
    }
