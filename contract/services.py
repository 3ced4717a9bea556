"""Service IP advertisement: what node.json tells the agent, and where the agent writes it.

The compiler puts the node's service CIDRs (cluster.yaml `bgp.service_cluster_ips`,
`service_external_ips`, `service_loadbalancer_ips`) into node.json's `bird.services` when the
node advertises them; bird.conf then includes, inside its `calicc_services` static protocol of
each family, a file the agent owns (`SERVICE_INCLUDES`, relative to bird.conf) holding the
/32 (/128) blackholes of the Local Services whose endpoints run on the node. The agent writes
only addresses inside these CIDRs, so the file is valid BIRD even when empty.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pydantic import BaseModel, ConfigDict, Field

from calicc.contract.names import V4, V6

SERVICE_PROTOCOL = "calicc_services"  # bird.conf's static protocol of the family's service IPs
SERVICE_INCLUDES = {V4: "services/ipv4.conf", V6: "services/ipv6.conf"}  # relative to bird.conf
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"  # "true": none here

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


class ServiceIps(BaseModel):
    """The service CIDRs a node advertises, and the families whose include the agent writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster_ips: tuple[Network, ...] = Field((), description="bgp.service_cluster_ips")
    external_ips: tuple[Network, ...] = Field((), description="bgp.service_external_ips")
    loadbalancer_ips: tuple[Network, ...] = Field((), description="bgp.service_loadbalancer_ips")
    aggregate_loadbalancer_ips: bool = Field(
        True, description="bgp.service_loadbalancer_aggregation is Enabled (Calico's default)"
    )
    families: tuple[int, ...] = Field(
        description="IP versions (4, 6) whose include (services/ipv4.conf, ipv6.conf) bird.conf has"
    )


def is_single(net: Network) -> bool:
    """Return whether `net` is one address (/32, /128): Calico advertises those per Service.

    Examples:
        >>> is_single(IPv4Network("192.0.2.7/32")), is_single(IPv4Network("192.0.2.0/24"))
        (True, False)
    """
    return net.prefixlen == net.max_prefixlen


def host_route_text(addresses: list[Address]) -> str:
    """Return the BIRD text of an include: one blackhole per address, sorted, one family.

    Examples:
        >>> text = host_route_text([IPv4Address("10.96.0.20"), IPv4Address("10.96.0.10")])
        >>> text.splitlines()[1:]
        ['route 10.96.0.10/32 blackhole;', 'route 10.96.0.20/32 blackhole;']
    """
    lines = ["# Local Services with an endpoint on this node (written by the calicc agent)"]
    for address in sorted(set(addresses)):
        lines.append(f"route {address}/{address.max_prefixlen} blackhole;")
    return "\n".join(lines) + "\n"
