"""Create and remove a lab topology's namespaces, bridges, veths, addresses and routes.

Only namespaces named after the lab are touched; the root namespace is never changed.
"""

from __future__ import annotations

from calicc.lab.names import lab_prefix
from calicc.lab.netns import ns_add, ns_delete, ns_list, ns_run, veth_between
from calicc.lab.topology import EXTERNAL_HOST, EXTERNAL_ROUTER, Host, Subnet, Topology

BRIDGE = "br0"


def _sysctl(ns: str, key: str, value: str) -> None:
    ns_run(ns, ["sysctl", "-qw", f"{key}={value}"])


def _make_subnet(topo: Topology, subnet: Subnet) -> None:
    ns_add(subnet.ns)
    ns_run(subnet.ns, ["ip", "link", "add", BRIDGE, "type", "bridge"])
    ns_run(subnet.ns, ["ip", "link", "set", BRIDGE, "up"])
    veth_between(topo.router_ns, subnet.router_port, subnet.ns, "router")
    ns_run(subnet.ns, ["ip", "link", "set", "router", "master", BRIDGE])
    gateway = f"{subnet.gateway}/{subnet.cidr.prefixlen}"
    ns_run(topo.router_ns, ["ip", "addr", "add", gateway, "dev", subnet.router_port])


def _attach(topo: Topology, host: Host) -> None:
    """Give `host` an eth0 on its subnet's bridge (or straight on the router) and a default."""
    subnet = topo.subnet_of(host.address.ip)
    if subnet is None:
        veth_between(topo.router_ns, host.bridge_port, host.ns, "eth0")
        gateway = topo.subnets[0].gateway
        ns_run(
            topo.router_ns, ["ip", "route", "add", f"{host.address.ip}/32", "dev", host.bridge_port]
        )
        ns_run(host.ns, ["ip", "addr", "add", str(host.address), "dev", "eth0"])
        ns_run(host.ns, ["ip", "route", "add", f"{gateway}/32", "dev", "eth0"])
    else:
        veth_between(subnet.ns, host.bridge_port, host.ns, "eth0")
        ns_run(subnet.ns, ["ip", "link", "set", host.bridge_port, "master", BRIDGE])
        ns_run(host.ns, ["ip", "addr", "add", str(host.address), "dev", "eth0"])
        gateway = subnet.gateway
    ns_run(host.ns, ["ip", "route", "add", "default", "via", str(gateway)])


def _make_external(topo: Topology) -> None:
    ns_add(topo.external_ns)
    veth_between(topo.router_ns, "external", topo.external_ns, "eth0")
    ns_run(topo.router_ns, ["ip", "addr", "add", str(EXTERNAL_ROUTER), "dev", "external"])
    ns_run(topo.external_ns, ["ip", "addr", "add", str(EXTERNAL_HOST), "dev", "eth0"])
    ns_run(topo.external_ns, ["ip", "route", "add", "default", "via", str(EXTERNAL_ROUTER.ip)])


def create_topology(topo: Topology) -> None:
    """Create every namespace and link of `topo`; on failure, remove what was made."""
    try:
        ns_add(topo.router_ns)
        _sysctl(topo.router_ns, "net.ipv4.ip_forward", "1")
        for subnet in topo.subnets:
            _make_subnet(topo, subnet)
        _make_external(topo)
        add_nodes(topo, topo.nodes)
        for host in topo.speakers:
            if host.ns != topo.router_ns:
                ns_add(host.ns)
                _attach(topo, host)
    except BaseException:
        remove_namespaces(topo.lab)
        raise


def add_nodes(topo: Topology, hosts: tuple[Host, ...]) -> None:
    """Create the namespaces of node `hosts` and attach each to its subnet's bridge."""
    for host in hosts:
        ns_add(host.ns)
        _sysctl(host.ns, "net.ipv4.ip_forward", "1")
        _attach(topo, host)


def lab_namespaces(lab: str) -> list[str]:
    """Return every existing namespace that belongs to lab `lab`, sorted."""
    return sorted(ns for ns in ns_list() if ns.startswith(lab_prefix(lab)))


def remove_namespaces(lab: str) -> list[str]:
    """Delete every namespace of lab `lab` (their links go with them); return their names."""
    names = lab_namespaces(lab)
    for ns in names:
        ns_delete(ns)
    return names
