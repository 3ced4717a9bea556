"""The facts of node.json the CNI plugin needs, read and checked without pydantic.

The pydantic model (contract/manifest.py) is the schema: the compiler writes node.json through
it and `calicc apply` validates a whole bundle against it before installing. The CNI plugin runs
once per pod, often in a fresh process, and needs a handful of fields of the installed copy: the
node's name, the pod MTU, the pools and blocks for IPAM, the tunnel address, the ipsets and the
policy bindings for endpoint policy. `read_node` reads exactly those, checks each one's type and
the values that end up in restore input or netlink (names, lengths), and ignores the other
sections. A wrong field raises `NodeFileError` naming it, e.g. `blocks[1].cidr: ...`.

`NodeFacts` (with `PoolFacts`, `BlockFacts`, `IdentityFacts`) is what the node side's helpers
take: both `CniNode` and the pydantic `NodeManifest` satisfy it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from calicc.contract.endpoint import BindingFacts, IpsetFacts
from calicc.contract.names import BUNDLE_VERSION, CHAIN_MAX, IPSET_MAX
from calicc.contract.text import cut

SET_TYPES = ("hash:net", "hash:ip", "hash:ip,port")
MTU_MIN, MTU_MAX = 68, 65535
TOKEN = re.compile(r"[A-Za-z0-9_.:,/-]+")  # names that land in iptables/ipset restore input


class NodeFileError(ValueError):
    """node.json lacks a fact the CNI plugin needs or holds a wrong one (the field is named)."""


class IdentityFacts(Protocol):
    """Who the node is."""

    @property
    def name(self) -> str:
        """The node's name."""


class PoolFacts(Protocol):
    """A pool, as IPAM sees it."""

    @property
    def name(self) -> str:
        """The pool's name."""

    @property
    def serves_node(self) -> bool:
        """Whether pods of this node get addresses from it."""


class BlockFacts(Protocol):
    """A block the node owns."""

    @property
    def cidr(self) -> IPv4Network:
        """The block."""

    @property
    def pool(self) -> str:
        """The pool it belongs to."""


class NodeFacts(Protocol):
    """What the CNI plugin and IPAM read of node.json."""

    @property
    def node(self) -> IdentityFacts:
        """Who the node is."""

    @property
    def pod_mtu(self) -> int:
        """The MTU of pod interfaces."""

    @property
    def pools(self) -> Sequence[PoolFacts]:
        """Every pool of the cluster."""

    @property
    def blocks(self) -> Sequence[BlockFacts]:
        """The node's blocks."""

    @property
    def tunnel_address(self) -> IPv4Address | None:
        """The node's tunnel address, never handed to a pod."""

    @property
    def ipsets(self) -> Sequence[IpsetFacts]:
        """The node's ipsets (the runtime ones carry a selector)."""

    @property
    def policies(self) -> Sequence[BindingFacts]:
        """The compiled NetworkPolicies and their chains."""


@dataclass(frozen=True)
class CniIdentity:
    """Who the node is."""

    name: str


@dataclass(frozen=True)
class CniPool:
    """A pool, as IPAM sees it."""

    name: str
    serves_node: bool


@dataclass(frozen=True)
class CniBlock:
    """A block the node owns."""

    cidr: IPv4Network
    pool: str


@dataclass(frozen=True)
class CniIpset:
    """An ipset of the node."""

    name: str
    type: str
    selector: Mapping[str, object] | None


@dataclass(frozen=True)
class CniBinding:
    """A compiled NetworkPolicy: the pods it selects and its chains."""

    namespace: str
    name: str
    pod_selector: Mapping[str, object]
    ingress_chain: str | None
    egress_chain: str | None


@dataclass(frozen=True)
class CniNode:
    """The facts of node.json the CNI plugin needs (satisfies `NodeFacts`)."""

    node: CniIdentity
    pod_mtu: int
    pools: tuple[CniPool, ...]
    blocks: tuple[CniBlock, ...]
    tunnel_address: IPv4Address | None
    ipsets: tuple[CniIpset, ...]
    policies: tuple[CniBinding, ...]


class _Fields:
    """One JSON object of node.json and where it sits, for typed reads that name the field."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise NodeFileError(f"{where or 'node.json'}: expected an object, got {_kind(value)}")
        self.data: dict[str, Any] = value
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: object = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise NodeFileError(f"{self.path(key)}: missing")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise NodeFileError(f"{self.path(key)}: expected {_names(kind)}, got {_kind(value)}")
        return value

    def text(self, key: str, limit: int = 253, default: object = ...) -> Any:
        """Return a non-empty string field of at most `limit` characters (or the default)."""
        value = self.get(key, (str, type(None)) if default is None else str, default)
        if isinstance(value, str) and not 0 < len(value) <= limit:
            raise NodeFileError(f"{self.path(key)}: {cut(value)!r} is not 1-{limit} characters")
        return value

    def token(self, key: str, limit: int, default: object = ...) -> Any:
        """Return a name that lands in restore input: plain characters only."""
        value = self.text(key, limit, default)
        if isinstance(value, str) and not TOKEN.fullmatch(value):
            raise NodeFileError(f"{self.path(key)}: {cut(value)!r} is not a plain name")
        return value

    def items(self, key: str) -> list[_Fields]:
        """Return the objects of an array field (an absent field is empty)."""
        values = self.get(key, list, [])
        return [_Fields(v, f"{self.path(key)}[{i}]") for i, v in enumerate(values)]


_KINDS: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_KINDS.get(k, k.__name__) for k in kinds)


def _network(fields: _Fields, key: str) -> IPv4Network:
    value = fields.text(key, 18)
    try:
        return IPv4Network(value)
    except ValueError as exc:
        raise NodeFileError(f"{fields.path(key)}: {cut(value)!r} is not an IPv4 network") from exc


def _address(fields: _Fields, key: str) -> IPv4Address | None:
    value = fields.text(key, 15, None)
    try:
        return None if value is None else IPv4Address(value)
    except ValueError as exc:
        raise NodeFileError(f"{fields.path(key)}: {cut(value)!r} is not an IPv4 address") from exc


def _ipset(f: _Fields) -> CniIpset:
    kind = f.get("type", str)
    if kind not in SET_TYPES:
        raise NodeFileError(f"{f.path('type')}: {cut(kind)!r} is not one of {', '.join(SET_TYPES)}")
    return CniIpset(f.token("name", IPSET_MAX), kind, f.get("selector", (dict, type(None)), None))


def _binding(f: _Fields) -> CniBinding:
    return CniBinding(
        namespace=f.text("namespace", 63),
        name=f.text("name"),
        pod_selector=f.get("pod_selector", dict),
        ingress_chain=f.token("ingress_chain", CHAIN_MAX, None),
        egress_chain=f.token("egress_chain", CHAIN_MAX, None),
    )


def node_facts(data: object) -> CniNode:
    """Return the CNI's facts of a decoded node.json (see the module docstring).

    Raises:
        NodeFileError: a needed field is missing or wrong; the message names it.
    """
    top = _Fields(data, "")
    version = top.get("bundle_version", int, BUNDLE_VERSION)
    if version != BUNDLE_VERSION:
        raise NodeFileError(f"bundle_version: {version} is not {BUNDLE_VERSION}")
    mtu = top.get("pod_mtu", int)
    if not MTU_MIN <= mtu <= MTU_MAX:
        raise NodeFileError(f"pod_mtu: {mtu} is not in {MTU_MIN}-{MTU_MAX}")
    return CniNode(
        node=CniIdentity(_Fields(top.get("node", dict), "node").text("name")),
        pod_mtu=mtu,
        pools=tuple(
            CniPool(f.text("name"), f.get("serves_node", bool)) for f in top.items("pools")
        ),
        blocks=tuple(CniBlock(_network(f, "cidr"), f.text("pool")) for f in top.items("blocks")),
        tunnel_address=_address(top, "tunnel_address"),
        ipsets=tuple(_ipset(f) for f in top.items("ipsets")),
        policies=tuple(_binding(f) for f in top.items("policies")),
    )


def read_node(raw: bytes) -> CniNode:
    """Return the CNI's facts of node.json's bytes.

    Raises:
        NodeFileError: not UTF-8 JSON, or a needed field is missing or wrong.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both
        raise NodeFileError(f"not valid JSON ({cut(exc)})") from exc
    except RecursionError as exc:
        raise NodeFileError("not valid JSON (nested too deeply)") from exc
    return node_facts(data)
