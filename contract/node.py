"""The facts of a bundle the CNI plugin needs, read and checked without pydantic.

The pydantic models (contract/manifest.py) are the schema: the compiler writes the bundle through
them and `calicc apply` validates and assembles a whole bundle before installing it, as one
self-contained copy (node.json beside cluster/). The CNI plugin runs once per pod, often in a fresh
process, and needs a handful of facts of that copy: the node's name, the pod MTU and blocks (of
either family), the tunnel addresses (node.json), the pools for IPAM (cluster/cluster.json, serving
the node when node.json's `pools` names them, for pods unless their `allowed_uses` lacks Workload)
and the reserved addresses (cluster.json's `reservations`), and the ipsets and policy bindings for
endpoint policy (cluster/policy.json). `read_node` reads exactly those, after checking that the
cluster files are the ones listed (cluster.json the one node.json was built from, both of the digest
cluster/index.json lists), checks each fact's type and the values that end up in restore input or
netlink (names, lengths), and ignores the other sections: of node.json's `files`, only
cluster.json's digest is read (a role's entry names its shared file by `source`, without a digest;
the plugin needs none of those files, nor nodes.tsv). A wrong field raises `NodeFileError` naming
it, e.g. `blocks[1].cidr: ...` or `cluster/policy.json: ipsets[0].name: ...`.

`NodeFacts` (with `PoolFacts`, `BlockFacts`, `IdentityFacts`) is what the node side's helpers
take: both `CniNode` and the pydantic `NodeManifest` satisfy it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Protocol

from calicc.contract.adopted import AdoptedEntry, AdoptedFacts, adopted_fact
from calicc.contract.endpoint import BindingFacts, IpsetFacts
from calicc.contract.names import (
    BUNDLE_VERSION,
    CHAIN_MAX,
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    CNP_PRIORITY_MAX,
    IPSET_MAX,
    MANIFEST,
)
from calicc.contract.text import cut

SET_TYPES = ("hash:net", "hash:ip", "hash:ip,port")
MTU_MIN, MTU_MAX = 68, 65535
BLOCK_MIN = {4: 20, 6: 116}  # the largest blocks (Calico's block size ranges)
TOKEN = re.compile(r"[A-Za-z0-9_.:,/-]+")  # names that land in iptables/ipset restore input
CLUSTER_READS = (CLUSTER_INDEX, CLUSTER_SETTINGS, CLUSTER_POLICY)  # beside node.json
TIERS = ("Admin", "NetworkPolicy", "Baseline")
OLDER = " (a bundle of an older calicc: rebuild the tree with this calicc and apply it)"


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
        """Whether the node has blocks of it."""

    @property
    def for_pods(self) -> bool:
        """Whether pods get addresses from it (allowed use Workload)."""


class BlockFacts(Protocol):
    """A block the node owns."""

    @property
    def cidr(self) -> IPv4Network | IPv6Network:
        """The block (IPv4 or IPv6)."""

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
    def reservations(self) -> Sequence[IPv4Network | IPv6Network] | None:
        """Addresses never handed to a pod (cluster.yaml reservations), None when none."""

    @property
    def tunnel_address(self) -> IPv4Address | None:
        """The node's tunnel address, never handed to a pod."""

    @property
    def tunnel_address_v6(self) -> IPv6Address | None:
        """The node's IPv6 tunnel address (vxlan-v6.calico), never handed to a pod."""

    @property
    def adopted(self) -> Sequence[AdoptedEntry] | None:
        """Running pods' addresses IPAM seeds its store with once (calicc import), None: none."""

    @property
    def ipsets(self) -> Sequence[IpsetFacts]:
        """The node's ipsets (the runtime ones carry a selector)."""

    @property
    def policies(self) -> Sequence[BindingFacts]:
        """The compiled policies (NetworkPolicies, ClusterNetworkPolicies) and their chains."""


@dataclass(frozen=True)
class CniIdentity:
    """Who the node is."""

    name: str


@dataclass(frozen=True)
class CniPool:
    """A pool, as IPAM sees it."""

    name: str
    serves_node: bool
    for_pods: bool = True


@dataclass(frozen=True)
class CniBlock:
    """A block the node owns."""

    cidr: IPv4Network | IPv6Network
    pool: str


@dataclass(frozen=True)
class CniIpset:
    """An ipset of the node."""

    name: str
    type: str
    selector: Mapping[str, object] | None


@dataclass(frozen=True)
class CniBinding:
    """A compiled policy: its tier (and priority), the pods it selects and its chains."""

    tier: str
    priority: int | None
    namespace: str | None
    namespace_selector: Mapping[str, object] | None
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
    reservations: tuple[IPv4Network | IPv6Network, ...] | None
    tunnel_address: IPv4Address | None
    tunnel_address_v6: IPv6Address | None
    ipsets: tuple[CniIpset, ...]
    policies: tuple[CniBinding, ...]
    adopted: tuple[AdoptedFacts, ...] | None = None


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


def _block(fields: _Fields, key: str) -> IPv4Network | IPv6Network:
    """Return a block of either family, of a size IPAM can hand out (Calico's ranges)."""
    value = fields.text(key, 43)
    try:
        cidr = IPv6Network(value) if ":" in value else IPv4Network(value)
    except ValueError as exc:
        raise NodeFileError(f"{fields.path(key)}: {cut(value)!r} is not an IP network") from exc
    low = BLOCK_MIN[cidr.version]
    if cidr.prefixlen < low:
        raise NodeFileError(
            f"{fields.path(key)}: {value} is larger than a block (IPv{cidr.version} blocks are "
            f"/{low} to /{cidr.max_prefixlen})"
        )
    return cidr


USES = ("Workload", "Tunnel", "LoadBalancer")


def _pool(f: _Fields, serving: list[str]) -> CniPool:
    """Return a pool of cluster.json: pods use it unless its `allowed_uses` lacks Workload."""
    name = f.text("name")
    uses = f.get("allowed_uses", (list, type(None)), None)
    if uses is not None and any(u not in USES for u in uses):
        raise NodeFileError(f"{f.path('allowed_uses')}: each is one of {', '.join(USES)}")
    return CniPool(name, name in serving, uses is None or "Workload" in uses)


def _networks(f: _Fields, key: str) -> tuple[IPv4Network | IPv6Network, ...] | None:
    """Return a list of networks of either family (None when the key is absent)."""
    values = f.get(key, (list, type(None)), None)
    if values is None:
        return None
    found = []
    for i, value in enumerate(values):
        try:
            text = str(value) if isinstance(value, str) else ""
            found.append(IPv6Network(text) if ":" in text else IPv4Network(text))
        except ValueError as exc:
            raise NodeFileError(f"{f.path(key)}[{i}]: {cut(value)!r} is not an IP network") from exc
    return tuple(found)


def _address(fields: _Fields, key: str) -> IPv4Address | None:
    value = fields.text(key, 15, None)
    try:
        return None if value is None else IPv4Address(value)
    except ValueError as exc:
        raise NodeFileError(f"{fields.path(key)}: {cut(value)!r} is not an IPv4 address") from exc


def _address_v6(fields: _Fields, key: str) -> IPv6Address | None:
    value = fields.text(key, 39, None)
    try:
        return None if value is None else IPv6Address(value)
    except ValueError as exc:
        raise NodeFileError(f"{fields.path(key)}: {cut(value)!r} is not an IPv6 address") from exc


def _ipset(f: _Fields) -> CniIpset:
    kind = f.get("type", str)
    if kind not in SET_TYPES:
        raise NodeFileError(f"{f.path('type')}: {cut(kind)!r} is not one of {', '.join(SET_TYPES)}")
    return CniIpset(f.token("name", IPSET_MAX), kind, f.get("selector", (dict, type(None)), None))


def _binding(f: _Fields) -> CniBinding:
    tier = f.get("tier", str, "NetworkPolicy")
    if tier not in TIERS:
        raise NodeFileError(f"{f.path('tier')}: {cut(tier)!r} is not one of {', '.join(TIERS)}")
    cluster_wide = tier != "NetworkPolicy"
    priority = f.get("priority", (int, type(None)), None)
    if cluster_wide and (priority is None or not 0 <= priority <= CNP_PRIORITY_MAX):
        raise NodeFileError(
            f"{f.path('priority')}: tier {tier} needs a priority of 0-{CNP_PRIORITY_MAX}"
        )
    namespace = f.text("namespace", 63, None)
    spaces = f.get("namespace_selector", (dict, type(None)), None)
    if (namespace is None) != cluster_wide or (spaces is None) == cluster_wide:
        what = "namespace_selector and no namespace" if cluster_wide else "a namespace"
        raise NodeFileError(f"{f.path('namespace')}: a policy of tier {tier} has {what}")
    return CniBinding(
        tier=tier,
        priority=priority,
        namespace=namespace,
        namespace_selector=spaces,
        name=f.text("name"),
        pod_selector=f.get("pod_selector", dict),
        ingress_chain=f.token("ingress_chain", CHAIN_MAX, None),
        egress_chain=f.token("egress_chain", CHAIN_MAX, None),
    )


def _serving(node: _Fields) -> list[str]:
    """Return the names node.json's `pools` lists: the pools that serve the node."""
    names: list[str] = []
    for i, name in enumerate(node.get("pools", list, [])):
        if not isinstance(name, str):
            raise NodeFileError(f"pools[{i}]: expected a string, got {_kind(name)}")
        names.append(name)
    return names


def _in(rel: str, value: object) -> _Fields:
    """Return the top object of cluster file `rel`; its errors name the file."""
    try:
        return _Fields(value, "")
    except NodeFileError:
        raise NodeFileError(f"{rel}: expected an object, got {_kind(value)}") from None


def node_facts(data: object, settings: object, policy: object) -> CniNode:
    """Return the CNI's facts of decoded node.json, cluster.json and policy.json.

    Pools come from cluster.json (serving the node when node.json names them), ipsets and
    policy bindings from policy.json, the rest from node.json.

    Raises:
        NodeFileError: a needed field is missing or wrong; the message names it (and the
            cluster file, for one of theirs).
    """
    top = _Fields(data, "")
    version = top.get("bundle_version", int, BUNDLE_VERSION)
    if version != BUNDLE_VERSION:
        why = OLDER if version < BUNDLE_VERSION else ""
        raise NodeFileError(f"bundle_version: {version} is not {BUNDLE_VERSION}{why}")
    mtu = top.get("pod_mtu", int)
    if not MTU_MIN <= mtu <= MTU_MAX:
        raise NodeFileError(f"pod_mtu: {mtu} is not in {MTU_MIN}-{MTU_MAX}")
    serving = _serving(top)
    try:
        cluster = _in(CLUSTER_SETTINGS, settings)
        pools = tuple(_pool(f, serving) for f in cluster.items("pools"))
        reservations = _networks(cluster, "reservations")
    except NodeFileError as exc:
        raise NodeFileError(f"{CLUSTER_SETTINGS}: {exc}") from None
    bindings = _in(CLUSTER_POLICY, policy)
    try:
        ipsets = tuple(_ipset(f) for f in bindings.items("ipsets"))
        policies = tuple(_binding(f) for f in bindings.items("policies"))
    except NodeFileError as exc:
        raise NodeFileError(f"{CLUSTER_POLICY}: {exc}") from None
    return CniNode(
        node=CniIdentity(_Fields(top.get("node", dict), "node").text("name")),
        pod_mtu=mtu,
        pools=pools,
        blocks=tuple(CniBlock(_block(f, "cidr"), f.text("pool")) for f in top.items("blocks")),
        reservations=reservations,
        tunnel_address=_address(top, "tunnel_address"),
        tunnel_address_v6=_address_v6(top, "tunnel_address_v6"),
        ipsets=ipsets,
        policies=policies,
        adopted=_adopted(top),
    )


def _adopted(top: _Fields) -> tuple[AdoptedFacts, ...] | None:
    """Return node.json's adopted pod addresses (None when it has none)."""
    values = top.get("adopted", (list, type(None)), None)
    if values is None:
        return None
    found = []
    for i, value in enumerate(values):
        try:
            found.append(adopted_fact(value))
        except ValueError as exc:
            raise NodeFileError(f"adopted[{i}]: {exc}") from None
    return tuple(found)


def _decode(rel: str, raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both
        raise NodeFileError(f"{rel}: not valid JSON ({cut(exc)})") from exc
    except RecursionError as exc:
        raise NodeFileError(f"{rel}: not valid JSON (nested too deeply)") from exc


def _listed(rel: str, lister: str, data: object) -> str:
    """Return the digest `lister` (node.json or cluster/index.json, decoded) lists for `rel`."""
    try:
        files = _Fields(data, "").get("files", dict)
        digest = _Fields(files.get(rel), f"files.{rel}").text("digest", 80)
    except NodeFileError as exc:
        raise NodeFileError(f"{lister}: {exc}") from None
    return str(digest)


def _check_digests(node: object, index: object, files: Mapping[str, bytes]) -> None:
    """Refuse cluster files that are not the ones node.json and cluster/index.json list."""
    built = _listed(CLUSTER_SETTINGS, MANIFEST, node)
    if _listed(CLUSTER_SETTINGS, CLUSTER_INDEX, index) != built:
        raise NodeFileError(
            f"{CLUSTER_INDEX} lists another {CLUSTER_SETTINGS} than node.json was built from: "
            "node.json and the cluster files come from different builds"
        )
    for rel in (CLUSTER_SETTINGS, CLUSTER_POLICY):
        listed = _listed(rel, CLUSTER_INDEX, index)
        actual = "sha256:" + hashlib.sha256(files[rel]).hexdigest()
        if actual != listed:
            raise NodeFileError(
                f"{rel} has digest {actual}, not the {listed} {CLUSTER_INDEX} lists: the "
                "cluster files come from different builds"
            )


def read_node(raw: bytes, cluster: Mapping[str, bytes]) -> CniNode:
    """Return the CNI's facts of node.json's bytes and the cluster files' (CLUSTER_READS).

    Raises:
        NodeFileError: a file is not UTF-8 JSON, a cluster file is not of the digest listed,
            or a needed field is missing or wrong.
    """
    node = _decode(MANIFEST, raw)
    index = _decode(CLUSTER_INDEX, cluster[CLUSTER_INDEX])
    _check_digests(node, index, cluster)
    settings = _decode(CLUSTER_SETTINGS, cluster[CLUSTER_SETTINGS])
    return node_facts(node, settings, _decode(CLUSTER_POLICY, cluster[CLUSTER_POLICY]))
