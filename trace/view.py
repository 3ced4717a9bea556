"""The rendered tree as `calicc trace` reads it: the node table, and each node as its agent sees it.

A node is read with the agent's own loader (trace/node_read.py: every digest checked, node.json
assembled with the cluster files into the node's manifest), so the trace answers for exactly
the bytes the node would apply, and refuses a tree that a node would refuse. Only the nodes a
question touches are read (each once); the node table (cluster/nodes.tsv) says which node owns
which block and address.

A view opened `cached` (the CLI's) keeps what it read of each node in the user's cache
(trace/node_cache.py): a node whose files are byte for byte as when it was read is not loaded
again, and neither the loader nor pydantic is imported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calicc.contract.names import BIRD_CONFIG, MANIFEST, NODES_TABLE
from calicc.contract.node import CLUSTER_READS, NodeFacts, NodeFileError, read_node
from calicc.contract.nodes_table import NodeRow, NodesTableError, parse_table
from calicc.trace.errors import TraceError
from calicc.trace.node import PoolFact, TraceNode
from calicc.trace.node_cache import cluster_key, node_key, read_node_entry, write_node_entry
from calicc.trace.policy import PodAt

if TYPE_CHECKING:
    from calicc.agent.bundle import Bundle

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
NODES_DIR = "nodes"
TEXTS_KEPT = 4  # rules texts a cached node keeps (one per set of its pods, the latest)


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
    cached: bool = False
    _bundles: dict[str, Bundle] = field(default_factory=dict)
    _nodes: dict[str, TraceNode] = field(default_factory=dict)
    _texts: dict[tuple[str, int, str], str] = field(default_factory=dict)
    _entries: dict[str, tuple[str | None, dict[str, Any]]] = field(default_factory=dict)
    _cluster_key: str | None = None
    _blocks: list[tuple[tuple[int, int], dict[Network, Owner]]] | None = None  # (family, len)
    _addresses: dict[Address, NodeRow] | None = None
    _owners: dict[Address, Owner | None] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, cached: bool = False) -> TreeView:
        """Read the node table of the tree at `root` (`cached`: keep read nodes between runs).

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
        view = cls(root, rows, {r.name: r for r in rows}, cached)
        if cached:
            view._cluster_key = cluster_key(root)
        return view

    def row(self, node: str) -> NodeRow:
        """Return the node's row, or raise naming a few of the cluster's nodes."""
        found = self.by_name.get(node)
        if found is None:
            known = ", ".join(sorted(self.by_name)[:5])
            more = " ..." if len(self.by_name) > 5 else ""  # noqa: PLR2004
            raise TraceError(f"unknown node {node!r}: the cluster's nodes are {known}{more}")
        return found

    def bundle(self, node: str) -> Bundle:
        """Return the node's verified bundle (read once, with the agent's loader)."""
        if node not in self._bundles:
            self.row(node)
            from calicc.trace.node_read import read_bundle  # noqa: PLC0415 (pydantic: lazily)

            self._bundles[node] = read_bundle(self.root / NODES_DIR / node, node)
        return self._bundles[node]

    def node(self, node: str) -> TraceNode:
        """Return what the trace knows of the node (from the cache, else its bundle)."""
        if node not in self._nodes:
            self.row(node)
            kept = self._entry(node).get("facts")
            facts = _facts(kept) if isinstance(kept, dict) else None
            if facts is None:
                from calicc.trace.node_read import facts_of  # noqa: PLC0415 (pydantic: lazily)

                facts = facts_of(self.bundle(node))
                self._remember(node, "facts", facts.to_json())
            self._nodes[node] = facts
        return self._nodes[node]

    def text(self, node: str, family: int, pods: Sequence[PodAt]) -> str:
        """Return the node's rules text of `family` with `pods`' endpoint chains merged in."""
        key = (node, family, pods_key(pods))
        if key not in self._texts:
            self.node(node)
            texts = self._entry(node).get("texts")
            found = texts.get(f"{family}:{key[2]}") if isinstance(texts, dict) else None
            if not isinstance(found, str):
                from calicc.trace.node_read import node_text  # noqa: PLC0415 (pydantic: lazily)

                found = node_text(self.bundle(node), pods, family)
                kept = dict(texts) if isinstance(texts, dict) else {}
                kept = dict(list(kept.items())[-TEXTS_KEPT + 1 :])  # the latest sets of pods
                self._remember(node, "texts", kept | {f"{family}:{key[2]}": found})
            self._texts[key] = found
        return self._texts[key]

    def bird_conf(self, node: str) -> str:
        """Return the node's bird.conf as rendered and verified ("" for a node without one)."""
        self.node(node)  # read (and checked) once with these very bytes
        if node in self._bundles or not self.cached:
            bundle = self.bundle(node)
            return bundle.text(BIRD_CONFIG) if bundle.has(BIRD_CONFIG) else ""
        path = self.root / NODES_DIR / node / BIRD_CONFIG
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def ipam_facts(self, node: str) -> NodeFacts:
        """Return what the node's CNI IPAM reads of it (pools, blocks, tunnel addresses)."""
        self.node(node)
        if node in self._bundles or not self.cached:
            return self.bundle(node).manifest
        cluster = {rel: (self.root / rel).read_bytes() for rel in CLUSTER_READS}
        try:
            return read_node((self.root / NODES_DIR / node / MANIFEST).read_bytes(), cluster)
        except (OSError, NodeFileError):  # the loader read it: say what it says
            return self.bundle(node).manifest

    def pools(self) -> tuple[PoolFact, ...]:
        """Return the cluster's pools (cluster.json, through any read node)."""
        node = next(iter(self._nodes), None) or self.rows[0].name
        return self.node(node).pools

    def _entry(self, node: str) -> dict[str, Any]:
        """Return what the cache keeps of the node ({} when nothing, or not cached)."""
        if node not in self._entries:
            key = None
            if self.cached and self._cluster_key is not None:
                key = node_key(self._cluster_key, self.root / NODES_DIR / node)
            entry = read_node_entry(key) if key is not None else None
            self._entries[node] = (key, entry or {})
        return self._entries[node][1]

    def _remember(self, node: str, part: str, value: object) -> None:
        key, entry = self._entries.get(node, (None, {}))
        if key is None:
            return
        entry[part] = value
        write_node_entry(key, entry)

    def owner(self, address: Address) -> Owner | None:
        """Return the node, block and pool an address belongs to (None: in no node's block)."""
        if address not in self._owners:
            self._owners[address] = self._find_owner(address)
        return self._owners[address]

    def _find_owner(self, address: Address) -> Owner | None:
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


def pods_key(pods: Sequence[PodAt]) -> str:
    """Return a digest of what a node's rules text takes from its pods."""
    parts = [
        repr((p.key, sorted(p.labels.items()), sorted(p.namespace_labels.items()), p.ports,
              [str(a) for a in p.addresses]))
        for p in pods
    ]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _facts(data: Mapping[str, Any]) -> TraceNode | None:
    try:
        return TraceNode.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None  # an entry this code did not write: read the node again
