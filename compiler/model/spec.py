"""The cluster description (cluster.yaml) as strict pydantic v2 models.

Every model forbids unknown keys. ICP config.yaml keys are accepted as aliases where they
mean the same thing (calico_ipip_mode, calico_tunnel_mtu, calico_ip_autodetection_method).
"""

from __future__ import annotations

import re
from enum import StrEnum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from calicc.compiler.host.spec import HostInterface, HostProtection, unique_interfaces
from calicc.compiler.model.autodetect import autodetection_method
from calicc.compiler.model.bgp_filters import (
    BgpFilter,
    BgpFilterName,
    Community,
    CommunityRef,
    PrefixAdvertisement,
)
from calicc.compiler.model.bgp_peer import PeerOptions
from calicc.compiler.model.uses import DEFAULT_USES, PoolUse, Reservation, check_uses
from calicc.compiler.selector import check_selector
from calicc.contract.fields import (
    Dns1123Label,
    Dns1123Subdomain,
    InterfaceName,
    Labels,
    NodePath,
)
from calicc.contract.manifest import SecretRef, Strict
from calicc.contract.text import cut

AS_MIN, AS_MAX = 1, 4_294_967_295
V4_BLOCK = (20, 32)  # Calico's allowed blockSize per family
V6_BLOCK = (116, 128)
AsNumber = Annotated[
    int, Field(ge=AS_MIN, le=AS_MAX, description="BGP AS number (1-4294967295, 4-byte ASNs)")
]


class EncapMode(StrEnum):
    """When a pool's traffic between two nodes is encapsulated."""

    ALWAYS = "Always"
    CROSS_SUBNET = "CrossSubnet"
    NEVER = "Never"


SNIPPET_MAX = 64 * 1024
SNIPPET_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
BIRD_INCLUDE = re.compile(r"(^|[;{}\s])include\s*\"")


def _check_snippet(text: str | None) -> str | None:
    """A snippet is BIRD text: bounded, no control characters, no include of other files."""
    if text is None:
        return None
    if len(text) > SNIPPET_MAX:
        raise ValueError(f"a snippet holds at most {SNIPPET_MAX} characters, not {len(text)}")
    if SNIPPET_CONTROL.search(text):
        raise ValueError("a snippet holds BIRD text: no control characters but tab and newline")
    if BIRD_INCLUDE.search(text):
        raise ValueError(
            "a snippet may not include files (the node's bundle holds only calicc's files): "
            "write the configuration into the snippet itself"
        )
    return text


class BirdSnippets(Strict):
    """Verbatim BIRD configuration included at documented points of bird.conf."""

    top: str | None = Field(None, description="after router id and logging, before any protocol")
    filters: str | None = Field(None, description="after calicc's functions and filters")
    bottom: str | None = Field(None, description="at the end of the file, after all protocols")

    _text = field_validator("top", "filters", "bottom")(_check_snippet)


class Pool(Strict):
    """An IPv4 or IPv6 pool. Unset fields take the cluster-wide values of the pool's family.

    A LoadBalancer pool inherits no encapsulation (Calico refuses IPIP or VXLAN on one).
    """

    name: Dns1123Subdomain
    cidr: IPv4Network | IPv6Network = Field(description="the pool, IPv4 or IPv6")
    block_size: int | None = Field(
        None,
        ge=V4_BLOCK[0],
        le=V6_BLOCK[1],
        description="Calico blockSize of this pool: 20-32 for IPv4, 116-128 for IPv6",
    )
    ipip_mode: EncapMode | None = Field(None, description="IPIP between nodes of this pool")
    vxlan_mode: EncapMode | None = Field(None, description="VXLAN between nodes of this pool")
    nat_outgoing: bool | None = Field(None, description="SNAT pod traffic leaving the pools")
    node_selector: str | None = Field(None, description="Calico selector over node labels")
    disabled: bool = Field(False, description="keep the pool, allocate no new blocks from it")
    allowed_uses: tuple[PoolUse, ...] | None = Field(
        None,
        description="what the pool's addresses are for: Workload (pods), Tunnel (the nodes' "
        "IPIP/VXLAN tunnel addresses), LoadBalancer (alone: no node blocks, masqueraded to); "
        "default [Workload, Tunnel]",
    )
    communities: tuple[CommunityRef, ...] = Field(
        (), description="communities on the pool's exported routes (names or aa:nn, aa:nn:mm)"
    )

    _selector = field_validator("node_selector")(check_selector)
    _uses = field_validator("allowed_uses")(check_uses)

    @property
    def uses(self) -> frozenset[PoolUse]:
        """Return the pool's uses (Calico's default when unset)."""
        return DEFAULT_USES if self.allowed_uses is None else frozenset(self.allowed_uses)


class BgpPeer(PeerOptions):
    """An external BGP peer (a ToR, an off-cluster route reflector, GoBGP, FRR).

    Its session options (timers, passive, TTL security, local AS, ...) are PeerOptions'.
    """

    peer_ip: IPv4Address | IPv6Address = Field(description="the peer's address, either family")
    as_number: AsNumber
    port: int | None = Field(None, ge=1, le=65535, description="the peer's BGP port (179)")
    node_selector: str | None = Field(None, description="nodes that peer; all nodes when unset")
    password: SecretRef | None = Field(None, description="TCP MD5 password, by reference")
    keep_next_hop: bool = Field(False, description="eBGP: keep the original next hop")
    next_hop_self: bool = Field(False, description="advertise this node as next hop")
    export: tuple[IPv4Network | IPv6Network, ...] = Field(
        (),
        description="prefixes advertised to this peer besides the node's own blocks (of the "
        "peer's family)",
    )
    multihop: int | None = Field(None, ge=1, le=255, description="TTL; default multihop")
    filters: tuple[BgpFilterName, ...] = Field(
        (), description="bgp.filters run on this session, in order, before bgp.global_filters"
    )

    _selector = field_validator("node_selector")(check_selector)


class Bgp(Strict):
    """Cluster-wide BGP settings."""

    as_number: AsNumber = 64512
    node_to_node_mesh: bool = Field(True, description="every node peers with every other node")
    listen_port: int = Field(179, ge=1, le=65535, description="BIRD's BGP port on every node")
    mesh_password: SecretRef | None = Field(None, description="password of the mesh sessions")
    node_mesh_max_restart_time: int | None = Field(
        None, ge=1, le=4095, description="graceful restart time of the mesh sessions, seconds"
    )
    peers: tuple[BgpPeer, ...] = Field((), description="external peers (ToR, reflectors)")
    fast_timers: bool = Field(
        False, description="connect delay 0 / retry 1 s: quick convergence for labs and tests"
    )
    service_cluster_ips: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), description="Services' cluster IP CIDRs every node advertises to external peers"
    )
    service_external_ips: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), description="Services' external IP CIDRs every node advertises to external peers"
    )
    service_loadbalancer_ips: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), description="LoadBalancer IP CIDRs every node advertises to external peers"
    )
    service_loadbalancer_aggregation: Literal["Enabled", "Disabled"] = Field(
        "Enabled", description="Disabled: a /32 per LoadBalancer IP in use, not the CIDRs"
    )
    communities: tuple[Community, ...] = Field((), description="named BGP communities")
    prefix_advertisements: tuple[PrefixAdvertisement, ...] = Field(
        (), description="communities added to exported routes inside a CIDR"
    )
    filters: tuple[BgpFilter, ...] = Field((), description="BGP filters (Calico's BGPFilter)")
    global_filters: tuple[BgpFilterName, ...] = Field(
        (), description="bgp.filters run on every session with an external peer, after its own"
    )


API_SERVER = re.compile(
    r"https?://([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?"
)


class KubernetesApi(Strict):
    """How nodes reach the Kubernetes API (pod and namespace labels, named ports).

    Either a kubeconfig on each node, or the server's URL with the paths of its CA and of a
    token file on each node (calicc writes them into cluster/kubeconfig, a kubeconfig of
    paths). Paths, never a credential: the tree holds where secrets are, not what they say.
    """

    kubeconfig: NodePath | None = Field(
        None, description="a kubeconfig on every node, e.g. /etc/cni/net.d/calicc-kubeconfig"
    )
    server: str | None = Field(
        None, description="the API server's URL, e.g. https://10.0.0.1:6443 (with no kubeconfig)"
    )
    certificate_authority: NodePath | None = Field(
        None, description="with server: the CA bundle on every node that signs the server's cert"
    )
    token_file: NodePath | None = Field(
        None, description="with server: a file on every node holding the bearer token"
    )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None and not API_SERVER.fullmatch(value):
            raise ValueError(
                f"{cut(value)!r} is not an API server URL: use https://HOST[:PORT] (HOST a DNS "
                "name, an IPv4 address or a [bracketed] IPv6 address)"
            )
        return value

    @model_validator(mode="after")
    def _one_way(self) -> KubernetesApi:
        if (self.kubeconfig is None) == (self.server is None):
            raise ValueError(
                "give either kubeconfig (a path on the nodes) or server (with "
                "certificate_authority and token_file), not both or neither"
            )
        if self.kubeconfig is not None and (self.certificate_authority or self.token_file):
            raise ValueError(
                "certificate_authority and token_file go with server; a kubeconfig names its own"
            )
        return self


class Node(Strict):
    """A Kubernetes node."""

    name: Dns1123Subdomain = Field(description="the Kubernetes node name (DNS-1123 subdomain)")
    address: IPv4Interface | None = Field(
        None, description="node IPv4 with its subnet prefix, 10.0.0.5/24"
    )
    address_v6: IPv6Interface | None = Field(
        None, description="node IPv6 with its subnet prefix, fd00:30::5/64"
    )
    router_id: str | None = Field(
        None,
        description="BGP router id (a dotted quad); default: the IPv4 address, or for an "
        "IPv6-only node one derived from its name",
    )
    interface: InterfaceName | None = Field(None, description="the node's uplink interface")
    as_number: AsNumber | None = Field(None, description="the node's own AS (eBGP)")
    labels: Labels = Field(default_factory=dict, description="for pool and peer selectors")
    route_reflector_cluster_id: str | None = Field(
        None, description="make this node a route reflector with this cluster id"
    )
    max_pods: int = Field(110, ge=1, le=65536, description="pods the node's blocks must hold")
    link_mtu: int | None = Field(None, ge=576, le=65535, description="this node's link MTU")
    bird_snippets: BirdSnippets | None = Field(None, description="this node's BIRD snippets")
    host_interfaces: tuple[HostInterface, ...] | None = Field(
        None,
        description='with host_protection: this node\'s protected interfaces ("*": all; '
        "[]: none), instead of host_protection.interfaces",
    )

    _host_interfaces = field_validator("host_interfaces")(unique_interfaces)

    @field_validator("route_reflector_cluster_id", "router_id")
    @classmethod
    def _dotted_quad(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                return str(IPv4Address(value))
            except ValueError as exc:
                raise ValueError(
                    f"{cut(value)!r} is not a dotted quad; an id looks like 1.0.0.1"
                ) from exc
        return value

    @model_validator(mode="after")
    def _an_address(self) -> Node:
        if self.address is None and self.address_v6 is None:
            raise ValueError(
                "a node needs an address: give address (IPv4, 10.0.0.5/24), "
                "address_v6 (IPv6, fd00:30::5/64) or both"
            )
        return self


class ClusterSpec(Strict):
    """One cluster: pools, BGP, nodes and NetworkPolicy files."""

    name: Dns1123Label = Field(
        max_length=40, json_schema_extra={"maxLength": 40}, description="the cluster's name"
    )
    network_type: Literal["calico"] = Field("calico", description="ICP: only calico is compiled")
    network_cidr: IPv4Network | None = Field(
        None, description="the default IPv4 pool (ICP: network_cidr); this or network_cidr_v6"
    )
    network_cidr_v6: IPv6Network | None = Field(
        None, description="the default IPv6 pool (default-ipv6-ippool); this or network_cidr"
    )
    block_size: int = Field(
        26, ge=V4_BLOCK[0], le=V4_BLOCK[1], description="Calico blockSize of IPv4 pools"
    )
    block_size_v6: int = Field(
        122, ge=V6_BLOCK[0], le=V6_BLOCK[1], description="Calico blockSize of IPv6 pools"
    )
    ipip_mode: EncapMode = Field(
        EncapMode.ALWAYS,
        validation_alias=AliasChoices("ipip_mode", "calico_ipip_mode"),
        description="IPIP between nodes (ICP: calico_ipip_mode)",
    )
    calico_ipip_enabled: bool | None = Field(
        None, description="ICP before 3.1.1: true means Always, false means Never"
    )
    vxlan_mode: EncapMode = Field(EncapMode.NEVER, description="VXLAN between nodes")
    nat_outgoing: bool = Field(True, description="SNAT pod traffic leaving the pools")
    mtu: int | None = Field(
        None,
        ge=576,
        le=65535,
        validation_alias=AliasChoices("mtu", "calico_tunnel_mtu"),
        description="pod MTU; default: link MTU minus the encapsulation (ICP: calico_tunnel_mtu)",
    )
    link_mtu: int = Field(1500, ge=576, le=65535, description="nodes' link MTU unless set per node")
    ip_autodetection_method: str = Field(
        "first-found",
        validation_alias=AliasChoices("ip_autodetection_method", "calico_ip_autodetection_method"),
        description="how the agent checks the node's address: first-found, can-reach=HOST, "
        "interface=RE, skip-interface=RE, cidr=CIDR (ICP: calico_ip_autodetection_method)",
    )
    ip6_autodetection_method: str = Field(
        "first-found",
        description="ip_autodetection_method for the node's IPv6 address (cidr= takes IPv6 "
        "CIDRs, can-reach= an IPv6 address or a DNS name)",
    )
    service_cluster_ip_range: IPv4Network = Field(
        IPv4Network("10.96.0.0/12"), description="Kubernetes Service range (no pool overlaps it)"
    )
    service_cluster_ip_range_v6: IPv6Network | None = Field(
        None, description="Kubernetes IPv6 Service range (no IPv6 pool overlaps it)"
    )
    pools: tuple[Pool, ...] = Field(
        (), description="more pools, IPv4 or IPv6, beside network_cidr and network_cidr_v6"
    )
    reservations: tuple[Reservation, ...] = Field(
        (),
        description="addresses of the pools that the IPAM never hands to a pod and the lock "
        "never makes a tunnel address (Calico's IPReservation)",
    )
    bgp: Bgp = Field(default_factory=Bgp, description="BGP settings")
    nodes: tuple[Node, ...] = Field(min_length=1, description="the cluster's nodes")
    policies: tuple[str, ...] = Field((), description="NetworkPolicy files, globs allowed")
    pods: str | None = Field(
        None,
        description="the cluster's pods for `calicc trace` and the intents (docs/pods-file.md), "
        "relative to this file",
    )
    intents: str | None = Field(
        None,
        description="reachability intents (docs/trace.md), relative to this file: `calicc build` "
        "traces each and fails, writing nothing, when one is violated",
    )
    bird_snippets: BirdSnippets | None = Field(None, description="BIRD snippets of every node")
    kubernetes: KubernetesApi | None = Field(
        None,
        description="the Kubernetes API: without it, pod and namespace labels come from the "
        "runtime (runtimeConfig) and named ports match nothing",
    )
    host_protection: HostProtection | None = Field(
        None,
        description="host endpoints: policy on the nodes' own interfaces (GlobalNetworkPolicy "
        "documents in the policy files), failsafe ports, management networks",
    )
    cni_version: Literal["1.0.0", "0.4.0", "0.3.1"] = Field(
        "1.0.0", description="cniVersion of the CNI conflist (0.3.1/0.4.0 for older runtimes)"
    )

    @field_validator("ip_autodetection_method")
    @classmethod
    def _autodetect(cls, value: str) -> str:
        return autodetection_method(value)

    @field_validator("ip6_autodetection_method")
    @classmethod
    def _autodetect6(cls, value: str) -> str:
        return autodetection_method(value, version=6)

    @model_validator(mode="after")
    def _ipip_enabled(self) -> ClusterSpec:
        if self.calico_ipip_enabled is not None and "ipip_mode" not in self.model_fields_set:
            mode = EncapMode.ALWAYS if self.calico_ipip_enabled else EncapMode.NEVER
            object.__setattr__(self, "ipip_mode", mode)
        return self
