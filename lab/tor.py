"""A top-of-rack router for the lab: BIRD speaking eBGP with the nodes that peer with it.

It runs where the cluster file puts it (the router namespace when its address is the router's
own address in a subnet), learns every pool prefix from its rack, advertises them to its other
neighbors and installs them in its kernel, so unencapsulated pod traffic crosses subnets.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from calicc.compiler.plan import ClusterPlan


def tor_peers(plan: ClusterPlan, address: IPv4Address) -> tuple[tuple[IPv4Address, int], ...]:
    """Return (address, AS) of every node with a session to the speaker at `address`."""
    return tuple(
        (node.ipv4.ip, node.as_number)
        for node in plan.nodes
        if any(s.peer_ip == address for s in node.sessions)
    )


def tor_config(plan: ClusterPlan, address: IPv4Address, as_number: int) -> str:
    """Return bird.conf for the ToR at `address` in AS `as_number`."""
    pools = ", ".join(f"{p.cidr}+" for p in plan.pools if not p.disabled)
    lines = [
        f"# Lab ToR {address} (AS {as_number}) for cluster {plan.name}; written by calicc lab.",
        f"router id {address};",
        "protocol device { scan time 10; }",
        'protocol direct { ipv4; interface "*"; }',
        "protocol kernel { merge paths on; ipv4 { import none; export where source = RTS_BGP; }; }",
        f"filter lab_pools {{ if net ~ [ {pools} ] then accept; reject; }}",
        "template bgp rack {",
        f"  local {address} as {as_number};",
        "  multihop; connect delay time 0; connect retry time 1; error wait time 1, 5;",
        "  ipv4 { next hop keep; import filter lab_pools; export filter lab_pools; };",
        "}",
    ]
    for ip, asn in tor_peers(plan, address):
        name = "node_" + str(ip).replace(".", "_")
        lines.append(f"protocol bgp {name} from rack {{ neighbor {ip} as {asn}; }}")
    return "\n".join(lines) + "\n"
