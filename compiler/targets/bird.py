"""BIRD 2 configuration (bird/bird.conf) for one node.

Route ownership (DESIGN: one owner per kernel route):
- blackholes for the node's own blocks: routes.sh / the agent; BIRD keeps its own blackholes
  only in its table, to advertise them, and never exports them to the kernel;
- block routes learned over BGP: BIRD (kernel protocol, `proto bird`);
- VXLAN block routes: routes.sh / the agent (static, no BGP needed), BIRD rejects them.
IPIP next hops use stock BIRD 2 filter attributes: onlink, then ifname "tunl0", then gw.

One daemon serves both families (docs/ipv6.md): a node with an IPv6 address gets the IPv6
functions, filters and protocols beside the IPv4 ones (names suffixed `_v6`, an ipv6 channel
each), and its IPv6 sessions run between IPv6 addresses with one ipv6 channel. The template
loops over FamilyView objects; an IPv4-only node has one, which prints what it always did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

from calicc.compiler.bgp_services import ServiceView, service_view
from calicc.compiler.lock import net_key
from calicc.compiler.model.spec import EncapMode
from calicc.compiler.peering import Role, Session
from calicc.compiler.plan import Block, BlockV6, ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.compiler.targets.bird_filters import (
    export_statement,
    family_functions,
    import_statement,
)
from calicc.compiler.targets.bird_options import (
    channel_lines,
    multihop,
    protocol_lines,
    reachable_routes,
)
from calicc.contract.names import TUNNEL_DEVICE, V4, V6, VXLAN_DEVICE, VXLAN_V6_DEVICE


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
    template: str = "calicc_peer"  # calicc_peer_v6 for an IPv6 session
    channel: str = "ipv4"  # its one channel: the family of its addresses
    import_filter: str | None = None  # its own import, with bgp.filters (bird_filters.py)
    options: tuple[str, ...] = ()  # per-peer protocol options (targets/bird_options.py)
    channel_options: tuple[str, ...] = ()  # per-peer channel options (the import limit)


@dataclass(frozen=True)
class FamilyCluster:
    """The part of one family's filters that every node shares (computed once a build)."""

    pool_routes: str  # prefix set of the family's pools, any length inside
    node_subnets: str  # prefix set of the family's node subnets, any length inside
    kernel_rules: tuple[KernelRule, ...]


@dataclass(frozen=True)
class FamilyView:
    """One family's part of a node's bird.conf: its filters, protocols and session template.

    Names of the IPv4 part have no suffix (the file of an IPv4-only node is what it was before
    IPv6); the IPv6 ones end in `_v6`.
    """

    channel: str  # ipv4 | ipv6
    suffix: str  # "" | "_v6"
    kernel: str  # the kernel protocol's name after `protocol kernel` ("" is BIRD's own)
    header: str | None  # a comment opening the family's filters (None for IPv4)
    host: str  # a host route's length, for the comments: /32 | /128
    shared: FamilyCluster
    own_blocks: str
    own_blocks_within: str
    blocks: tuple[Block, ...] | tuple[BlockV6, ...]
    advertised: tuple[IPv4Network | IPv6Network, ...]
    local: IPv4Address | IPv6Address | None  # the sessions' local address (None: no sessions)
    subnet: IPv4Network | IPv6Network | None  # IPIP CrossSubnet: next hops routed directly
    bgp_filters: str = ""  # communities and filter functions its sessions call (bird_filters.py)
    reachable: tuple[str, ...] = ()  # static routes to peers via their reachable_by gateway
    services: ServiceView | None = None  # service IPs advertised (compiler/bgp_services.py)


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


def _export(session: Session, suffix: str) -> str:
    own = f"calicc_own_block{suffix}()"
    if session.reflects:
        own += f" || (source = RTS_BGP && calicc_pool_route{suffix}())"
    if session.extra_exports:
        own += " || net ~ [ " + ", ".join(str(n) for n in session.extra_exports) + " ]"
    if session.exports_services:
        own += f" || calicc_service_route{suffix}()"
    return export_statement(session, suffix, own)


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
    v6 = session.peer_ip.version == V6
    suffix = "_v6" if v6 else ""
    return BgpView(
        name=session.name,
        description=f"{who} ({_ROLE_TEXT[session.role]})",
        neighbor=f"neighbor {session.peer_ip}{port} as {session.peer_as};",
        passive=session.passive,
        multihop=multihop(session),
        rr_client=(
            f"rr client; rr cluster id {session.rr_cluster_id};" if session.rr_cluster_id else None
        ),
        secret_include=session.secret_include,
        export=_export(session, suffix),
        next_hop=next_hop,
        template=f"calicc_peer{suffix}",
        channel="ipv6" if v6 else "ipv4",
        import_filter=import_statement(session, suffix),
        options=protocol_lines(session.options),
        channel_options=channel_lines(session.options),
    )


def node_sessions(node: NodePlan) -> list[BgpView]:
    """Return the views of the node's BGP sessions, IPv4 then IPv6 (equal sessions share one)."""
    return [_bgp_view(s) for s in (*node.sessions, *node.sessions_v6)]


def _prefix_set(nets: Iterable[IPv4Network | IPv6Network], suffix: str = "") -> str:
    return "[ " + ", ".join(f"{n}{suffix}" for n in nets) + " ]"


@lru_cache(maxsize=4)
def _family_cluster(cluster: ClusterPlan, version: int) -> FamilyCluster:
    pools = cluster.pools_v4 if version == V4 else cluster.pools_v6
    subnets = cluster.node_subnets if version == V4 else cluster.node_subnets_v6
    return FamilyCluster(
        pool_routes=_prefix_set(sorted((p.cidr for p in pools), key=net_key), "+"),
        node_subnets=_prefix_set(list(subnets), "+"),
        kernel_rules=tuple(_kernel_rule(p) for p in pools if not p.disabled),
    )


@lru_cache(maxsize=2)
def _cluster_view(cluster: ClusterPlan) -> dict[str, object]:
    """Return the part of bird.conf's context that is the same on every node (once a build)."""
    return {
        "cluster": cluster.name,
        "listen_port": cluster.spec.bgp.listen_port,
        "fast_timers": cluster.spec.bgp.fast_timers,
        "tunnel_device": TUNNEL_DEVICE,
    }


_EXCLUDED = ("cali*", TUNNEL_DEVICE, VXLAN_DEVICE, "kube-ipvs*")
_EXCLUDED_V6 = ("cali*", TUNNEL_DEVICE, VXLAN_DEVICE, VXLAN_V6_DEVICE, "kube-ipvs*")


def _advertised(sessions: tuple[Session, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(sorted({n for s in sessions for n in s.extra_exports}, key=net_key))


# Per family: channel, name suffix, kernel protocol name, header comment, host route length.
_NAMING: dict[int, tuple[str, str, str, str | None, str]] = {
    4: ("ipv4", "", "", None, "/32"),
    6: (
        "ipv6",
        "_v6",
        " kernel6",
        "IPv6: the same functions and filters for the ipv6 channels (names end in _v6).",
        "/128",
    ),
}


def _family(
    cluster: ClusterPlan,
    address: IPv4Interface | IPv6Interface | None,
    blocks: tuple[Block, ...] | tuple[BlockV6, ...],
    sessions: tuple[Session, ...],
    version: int,
    *,
    node: NodePlan,
) -> FamilyView:
    channel, suffix, kernel, header, host = _NAMING[version]
    own = [b.cidr for b in blocks]
    shared = _family_cluster(cluster, version)
    within = _prefix_set(own, "+")
    return FamilyView(
        channel=channel,
        suffix=suffix,
        kernel=kernel,
        header=header,
        host=host,
        shared=shared,
        own_blocks=_prefix_set(own),
        own_blocks_within=within,
        blocks=blocks,
        advertised=_advertised(sessions),
        local=address.ip if address else None,
        subnet=address.network if address else None,
        reachable=reachable_routes(sessions),
        services=service_view(cluster.spec, node, version, suffix) if address else None,
        bgp_filters=family_functions(cluster, sessions, version, within, shared.node_subnets),
    )


def families(cluster: ClusterPlan, node: NodePlan) -> list[FamilyView]:
    """Return the node's families: IPv4 if it has an IPv4 address or blocks, then IPv6 likewise."""
    views = []
    if node.address is not None or node.blocks:
        views.append(_family(cluster, node.address, node.blocks, node.sessions, 4, node=node))
    if node.address_v6 is not None or node.blocks_v6:
        views.append(
            _family(cluster, node.address_v6, node.blocks_v6, node.sessions_v6, 6, node=node)
        )
    return views


def bird_view(cluster: ClusterPlan, node: NodePlan) -> dict[str, object]:
    """Return the template context for bird.conf."""
    v6 = node.address_v6 is not None or bool(node.blocks_v6)
    return {
        **_cluster_view(cluster),
        "node": node,
        "families": families(cluster, node),
        "excluded_interfaces": _EXCLUDED_V6 if v6 else _EXCLUDED,
        "sessions": node_sessions(node),  # rendered one by one: compiler/render.py
        "snippets": node.snippets,
    }
