"""The machine contract between compiler and node agent: node.json, cluster files, assembled.

A rendered tree writes each fact once. What every node shares lives in `cluster/`:
- cluster.json (`ClusterSettings`): the pools; with cluster/routes.sh, the cluster facts every
  node's own files were built from, so node.json names both with their digests;
- nodes.tsv (contract/nodes_table.py): the node table; policy.json (`ClusterPolicy`): policy
  bindings and ipsets; ipsets.restore: the sets for `ipset restore`. These change when a node
  joins or leaves or a policy changes, which changes no other node's files, so node.json does
  not name their digests: cluster/index.json (`ClusterIndex`) lists every cluster file's digest,
  and the agent checks each one against it (a torn copy of the cluster part is refused).
Each node's node.json (`NodeFile`) holds that node's own facts and lists its files. The agent
checks every digest, that node.json's cluster files are the ones cluster/index.json lists (else
the two come from builds whose cluster settings differ: refused, naming the file), and that the
node table's row of the node says what node.json says; then it assembles `NodeManifest`
(contract/assemble.py): the node's complete picture, with the routes, neighbours and FDB entries
to the other nodes derived from the node table by contract/vxlan.py, the one place that decides
them. schemas/ holds the JSON Schemas of `NodeFile`, `ClusterSettings`, `ClusterPolicy` and
`ClusterIndex`.
"""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from calicc.contract.adopted import AdoptedFacts
from calicc.contract.fields import EnvVarName, NodePath
from calicc.contract.host import ClusterHost, NodeHost
from calicc.contract.names import (
    BIRD_CONFIG,
    BUNDLE_VERSION,
    CNP_PRIORITY_MAX,
    IPSET_MAX,
    ROUTE_PROTOCOL,
)
from calicc.contract.services import ServiceIps

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


class Strict(BaseModel):
    """Base: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Sparse(Strict):
    """Base of models with keys added after their first release: written only when set.

    A key of `SPARSE` that holds None is left out of the JSON, so a bundle that does not use it
    (every IPv4-only bundle, for the IPv6 keys) keeps the bytes it had before the key existed.
    """

    SPARSE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_unset_new_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        for key in self.SPARSE:
            if data.get(key, ...) is None:
                del data[key]
        return data


def same_family(*values: IPAddress | IPNetwork | IPInterface | None) -> bool:
    """Return whether every value that is set is of one IP family."""
    return len({v.version for v in values if v is not None}) <= 1


class SecretRef(Strict):
    """Where a node finds a secret at apply time; the value never enters the rendered tree."""

    env: EnvVarName | None = Field(None, description="environment variable of the agent holding it")
    file: NodePath | None = Field(None, description="file on the node holding it (first line)")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file, e.g. {env: BGP_PASSWORD}")
        return self


class NodeIdentity(Sparse):
    """Who the node is, and how it must find its own addresses at apply time.

    At least one of `address` (IPv4) and `address_v6` (IPv6); both on a dual-stack node.
    """

    SPARSE: ClassVar[tuple[str, ...]] = ("address", "address_v6", "autodetection_method_v6")

    name: str
    address: IPv4Interface | None = Field(None, description="the node's IPv4 address and prefix")
    address_v6: IPv6Interface | None = Field(None, description="the node's IPv6 address and prefix")
    interface: str | None = None
    as_number: int
    labels: dict[str, str] = Field(default_factory=dict)
    autodetection_method: str = "first-found"
    autodetection_method_v6: str | None = Field(
        None, description="how the agent finds address_v6 (IP6_AUTODETECTION_METHOD)"
    )

    @model_validator(mode="after")
    def _an_address(self) -> NodeIdentity:
        if self.address is None and self.address_v6 is None:
            raise ValueError("a node has address (IPv4), address_v6 (IPv6) or both")
        return self


class BlockEntry(Strict):
    """A block owned by the node (IPv4 or IPv6)."""

    cidr: IPNetwork
    pool: str


Encapsulation = Literal["ipip", "vxlan", "none"]
EncapMode = Literal["Always", "CrossSubnet", "Never"]


PoolUse = Literal["Workload", "Tunnel", "LoadBalancer"]


def pods_may_use(allowed_uses: tuple[PoolUse, ...] | None) -> bool:
    """Return whether pods get addresses of a pool with these uses (unset: Calico's default)."""
    return allowed_uses is None or "Workload" in allowed_uses


class ClusterPool(Sparse):
    """A pool of the cluster, as cluster.json lists it (IPv4 or IPv6).

    `allowed_uses` is written only when the cluster file sets it (unset: Workload and Tunnel).
    """

    SPARSE: ClassVar[tuple[str, ...]] = ("allowed_uses",)

    name: str
    cidr: IPNetwork
    encapsulation: Encapsulation
    mode: EncapMode
    nat_outgoing: bool
    disabled: bool = False
    allowed_uses: tuple[PoolUse, ...] | None = Field(
        None, description="Workload, Tunnel, LoadBalancer; unset: Workload and Tunnel"
    )


class PoolEntry(Strict):
    """A pool the node knows about (for IPAM and NAT decisions)."""

    name: str
    cidr: IPNetwork
    encapsulation: Encapsulation
    mode: EncapMode
    nat_outgoing: bool
    serves_node: bool
    disabled: bool = False
    allowed_uses: tuple[PoolUse, ...] | None = None

    @property
    def for_pods(self) -> bool:
        """Whether pods get addresses from it (allowed use Workload)."""
        return pods_may_use(self.allowed_uses)


class Link(Strict):
    """A tunnel device the agent creates (ipip: tunl0; vxlan: vxlan.calico or vxlan-v6.calico).

    VXLAN over IPv6 (vxlan-v6.calico) is kind vxlan with an IPv6 `local` and `address`: the
    device is the same kind, only its family differs. IPIP has no IPv6.
    """

    name: str
    kind: Literal["ipip", "vxlan"]
    mtu: int
    address: IPInterface | None = None
    vni: int | None = None
    port: int | None = None
    mac: str | None = None
    local: IPAddress | None = None
    parent: str | None = Field(
        None, description="vxlan: device the tunnel sends through; unset: the one holding `local`"
    )

    @model_validator(mode="after")
    def _one_family(self) -> Link:
        if not same_family(self.address, self.local):
            raise ValueError("address and local are of one family (IPv4, or IPv6 for vxlan-v6)")
        ipv6 = (IPv6Address, IPv6Interface)
        if self.kind == "ipip" and any(isinstance(v, ipv6) for v in (self.address, self.local)):
            raise ValueError("ipip carries IPv4 only: address and local are IPv4")
        return self


class Route(Strict):
    """A kernel route the agent owns (carries `protocol`)."""

    dst: IPNetwork
    type: Literal["blackhole", "unicast"]
    via: IPAddress | None = None
    dev: str | None = None
    onlink: bool = False
    comment: str = ""

    @model_validator(mode="after")
    def _one_family(self) -> Route:
        if not same_family(self.dst, self.via):
            raise ValueError(f"via {self.via} is not of the family of dst {self.dst}")
        return self


class Neighbor(Strict):
    """A permanent neighbour entry (VXLAN: remote tunnel address to remote VTEP MAC)."""

    dev: str
    address: IPAddress
    lladdr: str


class FdbEntry(Strict):
    """A permanent bridge FDB entry (VXLAN: remote VTEP MAC to remote node address)."""

    dev: str
    lladdr: str
    dst: IPAddress


class Ipset(Strict):
    """An ipset the node holds.

    `members` come from the compiler; selector sets are filled by the agent and the CNI
    plugin at runtime from the endpoints that match `selector`.
    """

    name: str = Field(max_length=IPSET_MAX)
    type: Literal["hash:net", "hash:ip", "hash:ip,port"]
    members: tuple[str, ...] = ()
    selector: dict[str, object] | None = None
    comment: str = ""


class JumpRule(Strict):
    """A rule the agent keeps exactly once at the top (or bottom) of a built-in chain."""

    table: Literal["raw", "mangle", "nat", "filter"]
    chain: str
    rule: str
    position: Literal["top", "bottom"] = "top"


PolicyTier = Literal["Admin", "NetworkPolicy", "Baseline"]


class PolicyBinding(Strict):
    """A compiled policy: which pods it selects and the chains that enforce it.

    tier NetworkPolicy: a namespaced NetworkPolicy (`namespace`, `pod_selector`). Admin or
    Baseline: a ClusterNetworkPolicy, selecting the pods matching `pod_selector` in the
    namespaces matching `namespace_selector`, evaluated by `priority` (then name) within its
    tier; Admin chains before the NetworkPolicy tier, Baseline chains after it
    (contract/endpoint.py).
    """

    tier: PolicyTier = "NetworkPolicy"
    priority: int | None = Field(None, ge=0, le=CNP_PRIORITY_MAX)
    namespace: str | None = None
    namespace_selector: dict[str, object] | None = None
    name: str
    pod_selector: dict[str, object]
    ingress_chain: str | None = None
    egress_chain: str | None = None

    @model_validator(mode="after")
    def _scope_fits_tier(self) -> PolicyBinding:
        if self.tier == "NetworkPolicy":
            if self.namespace is None or self.namespace_selector is not None:
                raise ValueError("a NetworkPolicy binding has a namespace, no namespace_selector")
            if self.priority is not None:
                raise ValueError("a NetworkPolicy binding has no priority")
        elif self.namespace is not None or self.namespace_selector is None:
            raise ValueError(f"a {self.tier} tier binding has a namespace_selector, no namespace")
        elif self.priority is None:
            raise ValueError(f"a {self.tier} tier binding has a priority (0-{CNP_PRIORITY_MAX})")
        return self


class BirdSection(Sparse):
    """How BIRD runs on the node."""

    config: str = BIRD_CONFIG
    enabled: bool = True
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict, description="include path (relative to bird.conf) -> secret"
    )
    services: ServiceIps | None = None  # service IPs it advertises (contract/services.py)
    SPARSE: ClassVar[tuple[str, ...]] = ("services",)


class FileEntry(Strict):
    """A bundle file: its digest or the cluster file holding it, and where it is installed.

    A node's own file (and a cluster file, in cluster/index.json) carries its `digest`. A role
    node.json fills with a shared file carries its `source` instead, a cluster file whose
    digest cluster/index.json lists: the file's text has one home, so does its digest.
    """

    digest: str | None = Field(None, description="sha256:<hex> of the file (unset with source)")
    install: str | None = Field(None, description="where the agent installs it, under its root")
    source: str | None = Field(
        None,
        description="the cluster file (cluster/...) holding this role's text; its digest is "
        "the one cluster/index.json lists",
    )

    @model_validator(mode="after")
    def _digest_or_source(self) -> FileEntry:
        if (self.digest is None) == (self.source is None):
            raise ValueError("give exactly one of digest or source")
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class AdoptedPod(Sparse):
    """An address a running pod holds (calicc import): IPAM seeds it once (contract/adopted.py)."""

    SPARSE: ClassVar[tuple[str, ...]] = ("namespace", "pod")

    address: IPAddress
    handle: str = Field(description="<network>.<containerID>: what DEL of the container releases")
    container_id: str
    ifname: str = "eth0"
    namespace: str | None = None
    pod: str | None = None

    @model_validator(mode="after")
    def _by_the_rules(self) -> AdoptedPod:
        why = AdoptedFacts(**self.model_dump()).problem()
        if why is not None:
            raise ValueError(why)
        return self


class ClusterSettings(Sparse):
    """cluster/cluster.json: the cluster's settings every node's files were built from.

    `reservations` is written only when the cluster file has some.
    """

    SPARSE: ClassVar[tuple[str, ...]] = ("reservations",)

    bundle_version: int = BUNDLE_VERSION
    calicc_version: str
    cluster: str
    pools: tuple[ClusterPool, ...]
    jump_rules: tuple[JumpRule, ...] = ()
    reservations: tuple[IPNetwork, ...] | None = Field(
        None,
        description="addresses IPAM never hands to a pod (cluster.yaml reservations), merged",
    )


class ClusterPolicy(Strict):
    """cluster/policy.json: policy bindings and every ipset.

    The node-address set's members come from the node table (contract.nodes_table.host_networks).
    """

    cluster: str
    ipsets: tuple[Ipset, ...] = ()
    policies: tuple[PolicyBinding, ...] = ()
    host: ClusterHost | None = Field(
        None, description="host endpoints: each protected node's interfaces and host policies"
    )


class ClusterIndex(Strict):
    """cluster/index.json: every other file of the cluster part, its digest and install path."""

    bundle_version: int = BUNDLE_VERSION
    cluster: str
    files: dict[str, FileEntry]


class NodeFile(Sparse):
    """node.json as written: the node's own facts and the files it was built with, with digests.

    `files` lists the node's own files (bird.conf) and the cluster settings it was built from
    (cluster/cluster.json, relative to the rendered tree) with their digests, and for each
    role a shared file plays (routes script, sysctl, conflist, iptables rules) the cluster file
    that holds it (`source`); `routes` are the node's own (the blackholes of its blocks);
    `pools` names the pools that serve the node.
    """

    SPARSE: ClassVar[tuple[str, ...]] = ("tunnel_address_v6", "vtep_mac_v6", "adopted")

    bundle_version: int = BUNDLE_VERSION
    calicc_version: str
    cluster: str
    node: NodeIdentity
    link_mtu: int
    pod_mtu: int
    pools: tuple[str, ...] = ()
    blocks: tuple[BlockEntry, ...]
    tunnel_address: IPv4Address | None = None
    vtep_mac: str | None = None
    tunnel_address_v6: IPv6Address | None = Field(
        None, description="the node's vxlan-v6.calico address, never handed to a pod"
    )
    vtep_mac_v6: str | None = Field(None, description="the MAC of vxlan-v6.calico")
    route_protocol: int = ROUTE_PROTOCOL
    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: dict[str, str] = Field(
        default_factory=dict,
        description='key -> value; a key holding "/" is a path under /proc/sys (device names '
        'may hold dots), any other uses "." as the separator',
    )
    bird: BirdSection
    files: dict[str, FileEntry] = Field(default_factory=dict)
    adopted: tuple[AdoptedPod, ...] | None = Field(
        None, description="running pods' addresses IPAM seeds its store with once (import)"
    )


class NodeManifest(Sparse):
    """The node's complete picture, assembled from node.json and the cluster files it names.

    What the agent and the CNI plugin work from; never written as such (contract/assemble.py).
    """

    bundle_version: int = BUNDLE_VERSION
    calicc_version: str
    cluster: str
    node: NodeIdentity
    link_mtu: int
    pod_mtu: int
    SPARSE: ClassVar[tuple[str, ...]] = ("tunnel_address_v6", "reservations", "adopted")

    pools: tuple[PoolEntry, ...]
    blocks: tuple[BlockEntry, ...]
    reservations: tuple[IPNetwork, ...] | None = None
    tunnel_address: IPv4Address | None = None
    tunnel_address_v6: IPv6Address | None = None
    route_protocol: int = ROUTE_PROTOCOL
    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    ipsets: tuple[Ipset, ...] = ()
    jump_rules: tuple[JumpRule, ...] = ()
    policies: tuple[PolicyBinding, ...] = ()
    host: NodeHost | None = None  # this node's host endpoints (contract/host.py)
    sysctls: dict[str, str] = Field(
        default_factory=dict,
        description='key -> value; a key holding "/" is a path under /proc/sys (device names '
        'may hold dots), any other uses "." as the separator',
    )
    bird: BirdSection
    files: dict[str, FileEntry] = Field(default_factory=dict)
    adopted: tuple[AdoptedPod, ...] | None = None
