"""A topology's links, addresses and routes as `ip -batch` scripts, one per namespace (pure).

Wiring 200 nodes one `ip` process per command took most of a minute; as batches it is one `ip`
process per namespace. Each veth is made in the namespace that holds its bridge-side end (the
router or a subnet's bridge namespace) with its other end created straight in the host's
namespace (`peer name eth0 netns HOST`), so the root namespace never holds a lab link.

IPv6 addresses are added `nodad`: no link waits for duplicate address detection (the lab's
addresses are unique by construction). The router and the external namespace get IPv6 only when
some node has an IPv6 address, so an IPv4-only lab is wired as before.

Scripts run in stages: the router's (its legs into the subnets must exist before the bridges
take them), then the subnets' bridges, then the hosts (whose eth0 the earlier stages made).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from calicc.lab.topology import (
    EXTERNAL_HOST,
    EXTERNAL_HOST_V6,
    EXTERNAL_ROUTER,
    EXTERNAL_ROUTER_V6,
    Host,
    Topology,
)

BRIDGE = "br0"
ROUTER_STAGE, BRIDGE_STAGE, HOST_STAGE = 0, 1, 2


@dataclass(frozen=True)
class Script:
    """`ip -batch` lines to run in namespace `ns` at `stage` (earlier stages run first)."""

    stage: int
    ns: str
    lines: tuple[str, ...]


def _veth(port: str, peer_ns: str, peer: str = "eth0") -> str:
    return f"link add {port} type veth peer name {peer} netns {peer_ns}"


def base_scripts(topo: Topology) -> list[Script]:
    """Return the router, its legs into every subnet and the external namespace, the bridges."""
    router = ["link set lo up"]
    for subnet in topo.subnets:
        router += [
            _veth(subnet.router_port, subnet.ns, "router"),
            f"link set {subnet.router_port} up",
        ]
        if subnet.cidr is not None:
            router.append(
                f"addr add {subnet.gateway}/{subnet.cidr.prefixlen} dev {subnet.router_port}"
            )
        if subnet.cidr_v6 is not None:
            gateway_v6 = f"{subnet.gateway_v6}/{subnet.cidr_v6.prefixlen}"
            router.append(f"addr add {gateway_v6} dev {subnet.router_port} nodad")
    router += [
        _veth("external", topo.external_ns),
        "link set external up",
        f"addr add {EXTERNAL_ROUTER} dev external",
    ]
    if has_v6(topo):
        router.append(f"addr add {EXTERNAL_ROUTER_V6} dev external nodad")
    bridges = [
        Script(
            BRIDGE_STAGE,
            subnet.ns,
            (
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"link set {BRIDGE} up",
                f"link set router master {BRIDGE}",
                "link set router up",
            ),
        )
        for subnet in topo.subnets
    ]
    external: tuple[str, ...] = (
        "link set lo up",
        "link set eth0 up",
        f"addr add {EXTERNAL_HOST} dev eth0",
        f"route add default via {EXTERNAL_ROUTER.ip}",
    )
    if has_v6(topo):
        external += (
            f"addr add {EXTERNAL_HOST_V6} dev eth0 nodad",
            f"route add default via {EXTERNAL_ROUTER_V6.ip}",
        )
    return [
        Script(ROUTER_STAGE, topo.router_ns, tuple(router)),
        *bridges,
        Script(HOST_STAGE, topo.external_ns, external),
    ]


def has_v6(topo: Topology) -> bool:
    """Return whether any node or speaker of `topo` has an IPv6 address."""
    return any(h.address_v6 is not None for h in (*topo.nodes, *topo.speakers))


def _addresses(host: Host) -> list[str]:
    lines = [f"addr add {host.address} dev eth0"] if host.address is not None else []
    if host.address_v6 is not None:
        lines.append(f"addr add {host.address_v6} dev eth0 nodad")
    return lines


def _defaults(host: Host, gateways: Mapping[int, object]) -> list[str]:
    """Return a default route per family `host` has an address of, via that family's router."""
    mine = {4: host.address, 6: host.address_v6}
    return [f"route add default via {gateways[v]}" for v in (4, 6) if mine[v] and gateways.get(v)]


def host_scripts(topo: Topology, host: Host) -> list[Script]:
    """Return the scripts giving `host` an eth0 on its subnet's bridge (or on the router).

    A host outside every subnet hangs off the router with a host route each way; its default
    route goes via the first subnet's gateway of its family, reached over that host route.
    """
    subnet = topo.subnet_of(host.primary.ip)
    mine = ["link set lo up", "link set eth0 up", *_addresses(host)]
    if subnet is None:
        first = topo.subnets[0]
        gateways = {4: first.gateway, 6: first.gateway_v6}
        ip = host.primary.ip
        holder = Script(
            ROUTER_STAGE,
            topo.router_ns,
            (
                _veth(host.bridge_port, host.ns),
                f"link set {host.bridge_port} up",
                f"route add {ip}/{ip.max_prefixlen} dev {host.bridge_port}",
            ),
        )
        gateway = gateways[ip.version]
        mine.append(f"route add {gateway}/{ip.max_prefixlen} dev eth0")
    else:
        gateways = {4: subnet.gateway, 6: subnet.gateway_v6}
        holder = Script(
            BRIDGE_STAGE,
            subnet.ns,
            (
                _veth(host.bridge_port, host.ns),
                f"link set {host.bridge_port} master {BRIDGE}",
                f"link set {host.bridge_port} up",
            ),
        )
    mine += _defaults(host, gateways)
    return [holder, Script(HOST_STAGE, host.ns, tuple(mine))]


def merged(scripts: list[Script]) -> list[list[Script]]:
    """Return the scripts as stages in order, one script per namespace per stage.

    Lines for one namespace keep their order; namespaces keep the order they first appear in.
    """
    stages: dict[int, dict[str, list[str]]] = {}
    for script in scripts:
        stages.setdefault(script.stage, {}).setdefault(script.ns, []).extend(script.lines)
    return [
        [Script(stage, ns, tuple(lines)) for ns, lines in stages[stage].items()]
        for stage in sorted(stages)
    ]
