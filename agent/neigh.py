"""VXLAN's static layer 2: permanent neighbours and bridge FDB entries on owned devices.

Only devices the manifest creates (its vxlan links) are reconciled, and on them only permanent
entries (neighbours) and entries with a remote destination (FDB), which calicc owns. A link's
neighbours are of its family (IPv6 ones on vxlan-v6.calico); its FDB entries' destinations are
the remote nodes' addresses of that family.
"""

from __future__ import annotations

from typing import Any

from calicc.agent.links import family
from calicc.agent.netlink import IPRoute, call, link_index
from calicc.contract.manifest import FdbEntry, Link, Neighbor

NUD_PERMANENT = 0x80
NTF_SELF = 0x02

Entry = tuple[str, str]  # (ip, mac) for neighbours, (mac, remote ip) for FDB


def diff_entries(desired: set[Entry], current: set[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Return (to set, to delete), keyed by the first element (one entry per ip or per mac).

    Examples:
        >>> diff_entries({("a", "1")}, {("a", "2"), ("b", "3")})
        ([('a', '1')], [('b', '3')])
    """
    keys = {k for k, _ in desired}
    return sorted(desired - current), sorted(e for e in current if e[0] not in keys)


def _neighbours(ipr: IPRoute, index: int, kind: int) -> set[Entry]:
    msgs = ipr.get_neighbours(ifindex=index, family=kind)
    return {
        (m.get_attr("NDA_DST"), str(m.get_attr("NDA_LLADDR")).lower())
        for m in msgs
        if m["state"] & NUD_PERMANENT and m["ifindex"] == index
    }


def _fdb(ipr: IPRoute, index: int) -> set[Entry]:
    return {
        (str(m.get_attr("NDA_LLADDR")).lower(), m.get_attr("NDA_DST"))
        for m in ipr.fdb("dump", ifindex=index)
        if m["ifindex"] == index and m.get_attr("NDA_DST")
    }


def _reconcile_neigh(ipr: IPRoute, link: Link, index: int, wanted: set[Entry]) -> list[str]:
    dev = link.name
    add, delete = diff_entries(wanted, _neighbours(ipr, index, family(link)))
    for ip, mac in add:
        args: dict[str, Any] = {"dst": ip, "lladdr": mac, "ifindex": index}
        call(f"neighbour {ip} on {dev}", ipr.neigh, "replace", state=NUD_PERMANENT, **args)
    for ip, mac in delete:
        call(f"stale neighbour {ip}", ipr.neigh, "del", dst=ip, lladdr=mac, ifindex=index)
    return [f"{dev}: neighbour {ip} set" for ip, _ in add] + [
        f"{dev}: neighbour {ip} deleted" for ip, _ in delete
    ]


def _reconcile_fdb(ipr: IPRoute, dev: str, index: int, wanted: set[Entry]) -> list[str]:
    add, delete = diff_entries(wanted, _fdb(ipr, index))
    for mac, ip in add:
        args: dict[str, Any] = {"ifindex": index, "lladdr": mac, "dst": ip}
        call(f"fdb {mac} on {dev}", ipr.fdb, "replace", state=NUD_PERMANENT, flags=NTF_SELF, **args)
    for mac, ip in delete:
        args = {"ifindex": index, "lladdr": mac, "dst": ip}
        call(f"stale fdb {mac}", ipr.fdb, "del", flags=NTF_SELF, **args)
    return [f"{dev}: fdb {mac} set" for mac, _ in add] + [
        f"{dev}: fdb {mac} deleted" for mac, _ in delete
    ]


def reconcile_l2(
    ipr: IPRoute,
    links: tuple[Link, ...],
    neighbors: tuple[Neighbor, ...],
    fdb: tuple[FdbEntry, ...],
) -> list[str]:
    """Make the permanent neighbours and FDB entries of every vxlan link the manifest's."""
    changes: list[str] = []
    for link in links:
        index = link_index(ipr, link.name)
        if link.kind != "vxlan" or index is None:
            continue
        neigh = {(str(n.address), n.lladdr.lower()) for n in neighbors if n.dev == link.name}
        entries = {(f.lladdr.lower(), str(f.dst)) for f in fdb if f.dev == link.name}
        changes += _reconcile_neigh(ipr, link, index, neigh)
        changes += _reconcile_fdb(ipr, link.name, index, entries)
    return changes
