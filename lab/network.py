"""Create and remove a lab topology's namespaces, bridges, veths, addresses and routes.

Only namespaces named after the lab are touched; the root namespace is never changed. The
namespaces are made in one `ip -batch`, the wiring is one `ip -n NS -batch` per namespace
(lab.wiring plans the scripts), and the forwarding sysctls run several at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from calicc.lab.ipbatch import IpFailed, add_namespaces, delete_namespaces, run_stages
from calicc.lab.names import lab_prefix
from calicc.lab.netns import ns_list, ns_run
from calicc.lab.parallel import run_each
from calicc.lab.topology import Host, Topology
from calicc.lab.wiring import Script, base_scripts, has_v6, host_scripts, merged

FORWARD = "net.ipv4.ip_forward=1"
FORWARD_V6 = "net.ipv6.conf.all.forwarding=1"


def _forwarder(topo: Topology) -> Callable[[str], None]:
    """Return what turns forwarding on in a namespace: IPv4, and IPv6 in a lab that has it."""
    settings = [FORWARD, FORWARD_V6] if has_v6(topo) else [FORWARD]

    def forward(ns: str) -> None:
        ns_run(ns, ["sysctl", "-qw", *settings])

    return forward


def _attached(topo: Topology) -> tuple[Host, ...]:
    """Return the speakers that get a namespace of their own (not the router's)."""
    return tuple(h for h in topo.speakers if h.ns != topo.router_ns)


def create_topology(topo: Topology) -> None:
    """Create every namespace and link of `topo`; on failure, remove what was made."""
    hosts = (*topo.nodes, *_attached(topo))
    try:
        add_namespaces(
            [topo.router_ns, *(s.ns for s in topo.subnets), topo.external_ns]
            + [h.ns for h in hosts]
        )
        scripts: list[Script] = base_scripts(topo)
        for host in hosts:
            scripts += host_scripts(topo, host)
        run_stages(merged(scripts))
        run_each([topo.router_ns, *(h.ns for h in topo.nodes)], _forwarder(topo), what="sysctl")
    except BaseException:
        remove_namespaces(topo.lab)
        raise


def add_nodes(topo: Topology, hosts: tuple[Host, ...]) -> None:
    """Create the namespaces of node `hosts` and attach each to its subnet's bridge."""
    add_namespaces([h.ns for h in hosts])
    scripts: list[Script] = []
    for host in hosts:
        scripts += host_scripts(topo, host)
    run_stages(merged(scripts))
    run_each([h.ns for h in hosts], _forwarder(topo), what="sysctl")


def lab_namespaces(lab: str) -> list[str]:
    """Return every existing namespace that belongs to lab `lab`, sorted."""
    return sorted(ns for ns in ns_list() if ns.startswith(lab_prefix(lab)))


def remove_namespaces(lab: str) -> list[str]:
    """Delete every namespace of lab `lab` (their links go with them); return those deleted.

    One that cannot be deleted does not stop the others; it is left out of the returned names
    (a later `lab down` tries again).
    """
    names = lab_namespaces(lab)
    with suppress(IpFailed):  # -force went on past it; what is left shows in the listing
        delete_namespaces(names)
    left = set(lab_namespaces(lab)) if names else set()
    return [ns for ns in names if ns not in left]
