"""cluster/nodes.tsv: the cluster's node table, one line per node, written once for every node.

Each node's own directory names this file (and its digest) instead of repeating it, so the
rendered tree grows with the number of nodes, and adding a node adds one line here. Read by the
agent (every node's VXLAN routes, neighbours and FDB entries derive from it: contract/vxlan.py),
by routes.sh (awk, through the installed copy) and by `calicc diff`.

Format: a comment header, then tab-separated columns, `-` for an empty value:

    name  address (with prefix)  tunnel address  VTEP MAC  blocks  interface  pod MTU

and, when a node of the cluster has an IPv6 address, three more at the end (the header line
says which width the table has):

    IPv6 address (with prefix)  IPv6 tunnel address  IPv6 VTEP MAC

where blocks is a comma-separated list of `pool=cidr` (IPv4 blocks first), sorted; interface is
the one the node's address is on when the cluster file names it (the parent of the VXLAN
devices), and pod MTU the MTU of the node's pods and tunnel devices (cluster/routes.sh programs a
node from its row alone). An IPv6-only node's address is `-`; every row has an address of at
least one family. The IPv6 columns go last, and only where there is IPv6, so the columns
routes.sh's awk reads keep their positions and an IPv4-only cluster's table keeps its bytes.
Lines sorted by node name.
Parsing checks every field and names the line and the column of the first bad one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    collapse_addresses,
)

from calicc.contract.ip_text import parse_network, parse_v4_address, parse_v4_interface
from calicc.contract.names import NODES_TABLE, V4
from calicc.contract.patterns import DNS1123_SUBDOMAIN, INTERFACE

COLUMNS = ("name", "address", "tunnel_address", "vtep_mac", "blocks", "interface", "pod_mtu")
COLUMNS_V6 = ("address_v6", "tunnel_address_v6", "vtep_mac_v6")  # appended when there is IPv6
WIDE_COLUMNS = (*COLUMNS, *COLUMNS_V6)
HEADER = "# " + "\t".join(COLUMNS)
WIDE_HEADER = "# " + "\t".join(WIDE_COLUMNS)
NONE = "-"
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
MTU_RANGE = (68, 65535)  # IPv4's minimum, the largest the kernel takes


class NodesTableError(ValueError):
    """A line of nodes.tsv does not parse (the message names the line and column)."""


@dataclass(frozen=True)
class NodeRow:
    """One node as every other node sees it (an IPv6-only node has no `address`)."""

    name: str
    address: IPv4Interface | None
    tunnel_address: IPv4Address | None
    vtep_mac: str | None
    blocks: tuple[tuple[str, IPv4Network | IPv6Network], ...]  # (pool, block), sorted
    interface: str | None
    pod_mtu: int
    address_v6: IPv6Interface | None = None
    tunnel_address_v6: IPv6Address | None = None
    vtep_mac_v6: str | None = None

    @cached_property
    def _own_ips(self) -> tuple[IPv4Address | None, IPv6Address | None]:
        v4 = self.address.ip if self.address is not None else None
        return v4, self.address_v6.ip if self.address_v6 is not None else None

    def ip(self, version: int) -> IPv4Address | IPv6Address | None:
        """Return the node's own address of IP `version` (None: it has none), made once.

        `address.ip` builds a new address object at each call; a trace asks thousands of times.
        """
        return self._own_ips[0] if version == V4 else self._own_ips[1]

    @property
    def wide(self) -> bool:
        """Return whether the row needs the IPv6 columns (it has an IPv6 fact, or no IPv4)."""
        v6 = (self.address_v6, self.tunnel_address_v6, self.vtep_mac_v6)
        return self.address is None or any(v is not None for v in v6)

    def line(self, wide: bool | None = None) -> str:
        """Return this row as one line of nodes.tsv (no newline).

        `wide`: with the IPv6 columns (the table's width; default: the row's own, `self.wide`).
        """
        blocks = ",".join(f"{pool}={cidr}" for pool, cidr in self.blocks) or NONE
        fields = [
            self.name,
            _text(self.address),
            _text(self.tunnel_address),
            self.vtep_mac or NONE,
            blocks,
            self.interface or NONE,
            str(self.pod_mtu),
        ]
        if self.wide if wide is None else wide:
            fields += (
                _text(self.address_v6),
                _text(self.tunnel_address_v6),
                self.vtep_mac_v6 or NONE,
            )
        return "\t".join(fields)

    def blocks_of(self, pool: str) -> tuple[IPv4Network | IPv6Network, ...]:
        """Return this node's blocks of `pool`, sorted."""
        return tuple(cidr for owner, cidr in self.blocks if owner == pool)


def _text(value: object | None) -> str:
    return NONE if value is None else str(value)


Blocks = tuple[tuple[str, IPv4Network | IPv6Network], ...]


def block_order(blocks: Iterable[tuple[str, IPv4Network | IPv6Network]]) -> Blocks:
    """Return (pool, block) pairs in the table's order: IPv4 first, by block, then pool."""
    return tuple(sorted(blocks, key=lambda b: (b[1].version, b[1], b[0])))


def table_text(cluster: str, rows: tuple[NodeRow, ...]) -> str:
    """Return nodes.tsv for `rows` (sorted by name here).

    With the IPv6 columns when a row needs them (a node has IPv6 or no IPv4 address).
    """
    wide = any(row.wide for row in rows)
    head = [
        f"# nodes of cluster {cluster}, generated by calicc: do not edit.",
        "# blocks: pool=cidr, comma-separated; - is empty.",
        WIDE_HEADER if wide else HEADER,
    ]
    body = [row.line(wide) for row in sorted(rows, key=lambda r: r.name)]
    return "\n".join([*head, *body]) + "\n"


def _field(
    number: int, column: str, value: str, parse: Callable[[str], object] | None = None
) -> object:
    try:
        return parse(value) if parse else value
    except ValueError as exc:
        raise NodesTableError(f"{NODES_TABLE} line {number}, {column}: {exc}") from None


def _blocks(number: int, text: str) -> Blocks:
    if text == NONE:
        return ()
    blocks = []
    for item in text.split(","):
        pool, sep, cidr = item.partition("=")
        if not sep or not DNS1123_SUBDOMAIN.fullmatch(pool):
            raise NodesTableError(
                f"{NODES_TABLE} line {number}, blocks: {item[:80]!r} is not pool=cidr"
            )
        blocks.append((pool, _field(number, "blocks", cidr, parse_network)))
    return block_order(blocks)  # type: ignore[arg-type]


def _mac(number: int, column: str, mac: str) -> str | None:
    if mac == NONE:
        return None
    if not MAC.fullmatch(mac):
        raise NodesTableError(f"{NODES_TABLE} line {number}, {column}: {mac[:80]!r} is not a MAC")
    return mac


def _optional(
    number: int, column: str, value: str, parse: Callable[[str], object]
) -> object | None:
    return None if value == NONE else _field(number, column, value, parse)


def parse_row(number: int, line: str, columns: tuple[str, ...] = COLUMNS) -> NodeRow:
    """Return the row on line `number` of nodes.tsv, a table of `columns` (either width)."""
    fields = line.split("\t")
    if len(fields) != len(columns):
        raise NodesTableError(
            f"{NODES_TABLE} line {number}: {len(fields)} tab-separated fields, "
            f"expected {len(columns)} ({', '.join(columns)})"
        )
    name, address, tunnel, mac, blocks, interface, mtu = fields[: len(COLUMNS)]
    address_v6, tunnel_v6, mac_v6 = fields[len(COLUMNS) :] or (NONE, NONE, NONE)
    if not DNS1123_SUBDOMAIN.fullmatch(name):
        raise NodesTableError(f"{NODES_TABLE} line {number}, name: {name[:80]!r} is not a name")
    if address == NONE and address_v6 == NONE:
        either = "address or address_v6" if columns != COLUMNS else "address (IPv4 with prefix)"
        raise NodesTableError(f"{NODES_TABLE} line {number}, address: the node has no {either}")
    if interface != NONE and not INTERFACE.fullmatch(interface):
        raise NodesTableError(
            f"{NODES_TABLE} line {number}, interface: {interface[:80]!r} is not an interface name"
        )
    if not mtu.isdigit() or not MTU_RANGE[0] <= int(mtu) <= MTU_RANGE[1]:
        raise NodesTableError(
            f"{NODES_TABLE} line {number}, pod_mtu: {mtu[:80]!r} is not an MTU "
            f"({MTU_RANGE[0]}-{MTU_RANGE[1]})"
        )
    return NodeRow(
        name=name,
        address=_optional(number, "address", address, parse_v4_interface),  # type: ignore[arg-type]
        tunnel_address=_optional(number, "tunnel_address", tunnel, parse_v4_address),  # type: ignore[arg-type]
        vtep_mac=_mac(number, "vtep_mac", mac),
        blocks=_blocks(number, blocks),
        interface=None if interface == NONE else interface,
        pod_mtu=int(mtu),
        address_v6=_optional(number, "address_v6", address_v6, IPv6Interface),  # type: ignore[arg-type]
        tunnel_address_v6=_optional(number, "tunnel_address_v6", tunnel_v6, IPv6Address),  # type: ignore[arg-type]
        vtep_mac_v6=_mac(number, "vtep_mac_v6", mac_v6),
    )


@lru_cache(maxsize=4)
def parse_table(text: str) -> tuple[NodeRow, ...]:
    """Return the rows of nodes.tsv text, checked (names unique, lines sorted by name).

    The header line (a comment naming the columns) gives the table's width: the IPv4 columns,
    or those and the IPv6 ones. A table without a header line has the IPv4 columns. Cached by
    text (the rows are immutable): `calicc trace` loads several nodes of one tree, each bundle
    with the same table, and 1,000 rows take about 0.1 s to parse.
    """
    columns: tuple[str, ...] = COLUMNS
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line in (HEADER, WIDE_HEADER):
            columns = WIDE_COLUMNS if line == WIDE_HEADER else COLUMNS
        elif line and not line.startswith("#"):
            rows.append(parse_row(number, line, columns))
    names = [row.name for row in rows]
    if names != sorted(set(names)):
        raise NodesTableError(f"{NODES_TABLE}: node names must be unique and sorted")
    return tuple(rows)


def host_networks(addresses: Iterable[IPv4Interface]) -> tuple[IPv4Network, ...]:
    """Return node addresses as /32s collapsed into the fewest networks (the node-address set)."""
    return tuple(collapse_addresses(IPv4Network(address.ip) for address in addresses))


def host_networks_v6(addresses: Iterable[IPv6Interface]) -> tuple[IPv6Network, ...]:
    """Return IPv6 node addresses as /128s collapsed into the fewest networks (its IPv6 twin)."""
    return tuple(collapse_addresses(IPv6Network(address.ip) for address in addresses))
