"""A topology's links, addresses and routes as `ip -batch` scripts, one per namespace (pure).

Wiring 200 nodes one `ip` process per command took most of a minute; as batches it is one `ip`
process per namespace. Each veth is made in the namespace that holds its bridge-side end (the
router or a subnet's bridge namespace) with its other end created straight in the host's
namespace (`peer name eth0 netns HOST`), so the root namespace never holds a lab link.

Scripts run in stages: the router's (its legs into the subnets must exist before the bridges
take them), then the subnets' bridges, then the hosts (whose eth0 the earlier stages made).
"""

from __future__ import annotations

from dataclasses import dataclass

from calicc.lab.topology import EXTERNAL_HOST, EXTERNAL_ROUTER, Host, Topology

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
            f"addr add {subnet.gateway}/{subnet.cidr.prefixlen} dev {subnet.router_port}",
        ]
    router += [
        _veth("external", topo.external_ns),
        "link set external up",
        f"addr add {EXTERNAL_ROUTER} dev external",
    ]
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
    external = (
        "link set lo up",
        "link set eth0 up",
        f"addr add {EXTERNAL_HOST} dev eth0",
        f"route add default via {EXTERNAL_ROUTER.ip}",
    )
    return [
        Script(ROUTER_STAGE, topo.router_ns, tuple(router)),
        *bridges,
        Script(HOST_STAGE, topo.external_ns, external),
    ]


def host_scripts(topo: Topology, host: Host) -> list[Script]:
    """Return the scripts giving `host` an eth0 on its subnet's bridge (or on the router).

    A host outside every subnet hangs off the router with a /32 each way; its default route
    goes via the first subnet's gateway, reached over that /32.
    """
    subnet = topo.subnet_of(host.address.ip)
    mine = ["link set lo up", "link set eth0 up", f"addr add {host.address} dev eth0"]
    if subnet is None:
        gateway = topo.subnets[0].gateway
        holder = Script(
            ROUTER_STAGE,
            topo.router_ns,
            (
                _veth(host.bridge_port, host.ns),
                f"link set {host.bridge_port} up",
                f"route add {host.address.ip}/32 dev {host.bridge_port}",
            ),
        )
        mine.append(f"route add {gateway}/32 dev eth0")
    else:
        gateway = subnet.gateway
        holder = Script(
            BRIDGE_STAGE,
            subnet.ns,
            (
                _veth(host.bridge_port, host.ns),
                f"link set {host.bridge_port} master {BRIDGE}",
                f"link set {host.bridge_port} up",
            ),
        )
    mine.append(f"route add default via {gateway}")
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
