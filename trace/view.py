"""The rendered tree as `calicc trace` reads it: the node table, and each node as its agent sees it.

A node is read with the agent's own loader (agent/bundle.py `load_bundle` on `nodes/<name>`):
every digest checked, node.json assembled with the cluster files into the node's manifest. So the
trace answers for exactly the bytes the node would apply, and refuses a tree that a node would
refuse. Only the nodes a question touches are loaded (each once); the node table (cluster/
nodes.tsv) says which node owns which block and address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.bundle import Bundle, load_bundle
from calicc.contract.manifest import PoolEntry
from calicc.contract.names import BIRD_CONFIG, MANIFEST, NODES_TABLE
from calicc.contract.nodes_table import NodeRow, NodesTableError, parse_table
from calicc.trace.errors import TraceError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
NODES_DIR = "nodes"


@dataclass(frozen=True)
class Owner:
    """Who holds an address: the node whose block it is in, the block and its pool."""

    row: NodeRow
    block: Network
    pool: str


@dataclass
class TreeView:
    """A rendered tree (the directory holding cluster/ and nodes/), read on demand."""

    root: Path
    rows: tuple[NodeRow, ...]
    by_name: dict[str, NodeRow]
    _bundles: dict[str, Bundle] = field(default_factory=dict)
    _blocks: list[tuple[tuple[int, int], dict[Network, Owner]]] | None = None  # (family, len)
    _addresses: dict[Address, NodeRow] | None = None

    @classmethod
    def open(cls, root: Path) -> TreeView:
        """Read the node table of the tree at `root`.

        Raises:
            TraceError: not a rendered tree, or its node table does not parse.
        """
        path = root / NODES_TABLE
        try:
            rows = parse_table(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TraceError(
                f"{path} not found: point --tree at the directory `calicc build` wrote "
                "(it holds cluster/ and nodes/)"
            ) from exc
        except (OSError, UnicodeDecodeError, NodesTableError) as exc:
            raise TraceError(f"{path}: {exc}") from exc
        return cls(root, rows, {r.name: r for r in rows})

    def row(self, node: str) -> NodeRow:
        """Return the node's row, or raise naming a few of the cluster's nodes."""
        found = self.by_name.get(node)
        if found is None:
            known = ", ".join(sorted(self.by_name)[:5])
            more = " ..." if len(self.by_name) > 5 else ""  # noqa: PLR2004
            raise TraceError(f"unknown node {node!r}: the cluster's nodes are {known}{more}")
        return found

    def bundle(self, node: str) -> Bundle:
        """Return the node's verified bundle (read once)."""
        if node not in self._bundles:
            self.row(node)
            try:
                self._bundles[node] = load_bundle(self.root / NODES_DIR / node, node)
            except AgentError as exc:
                raise TraceError(str(exc)) from exc
        return self._bundles[node]

    def bird_conf(self, node: str) -> str:
        """Return the node's bird.conf as rendered and verified ("" for a node without one)."""
        bundle = self.bundle(node)
        return bundle.text(BIRD_CONFIG) if bundle.has(BIRD_CONFIG) else ""

    def pools(self) -> tuple[PoolEntry, ...]:
        """Return the cluster's pools (cluster.json, through any loaded node's manifest)."""
        node = next(iter(self._bundles), None) or self.rows[0].name
        return self.bundle(node).manifest.pools

    def owner(self, address: Address) -> Owner | None:
        """Return the node, block and pool an address belongs to (None: in no node's block)."""
        if self._blocks is None:
            index: dict[tuple[int, int], dict[Network, Owner]] = {}
            for row in self.rows:
                for pool, cidr in row.blocks:
                    index.setdefault((cidr.version, cidr.prefixlen), {})[cidr] = Owner(
                        row, cidr, pool
                    )
            self._blocks = sorted(index.items(), key=lambda b: -b[0][1])  # longest first
        for (version, prefixlen), blocks in self._blocks:
            if version == address.version:
                found = blocks.get(ip_network((address, prefixlen), strict=False))
                if found is not None:
                    return found
        return None

    def node_at(self, address: Address) -> NodeRow | None:
        """Return the node whose own (underlay or tunnel) address `address` is."""
        if self._addresses is None:
            self._addresses = {}
            for row in self.rows:
                for own in (row.address, row.address_v6):
                    if own is not None:
                        self._addresses[own.ip] = row
                for tunnel in (row.tunnel_address, row.tunnel_address_v6):
                    if tunnel is not None:
                        self._addresses[tunnel] = row
        return self._addresses.get(address)

    def node_json(self, node: str) -> Path:
        """Return the path of the node's node.json (for messages)."""
        return self.root / NODES_DIR / node / MANIFEST
