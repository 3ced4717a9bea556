"""node.json: the agent's manifest of one node's bundle (contract.manifest.NodeManifest).

It is built after every other file of the bundle, because it lists each file's digest and where
the agent installs it (relative to the agent's --root).
"""

from __future__ import annotations

from typing import Literal

from calicc import __version__
from calicc.compiler.emit import digest, dump_json
from calicc.compiler.model.spec import EncapMode
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.targets.ipset import ipsets_for
from calicc.compiler.targets.iptables import jump_rules, policy_bindings
from calicc.compiler.targets.routes import dataplane
from calicc.compiler.targets.sysctl import sysctl_data
from calicc.contract.manifest import (
    BirdSection,
    BlockEntry,
    FileEntry,
    NodeIdentity,
    NodeManifest,
    PoolEntry,
    SecretRef,
)
from calicc.contract.names import BIRD_CONFIG, MANIFEST, install_path

_ENCAP: dict[str | None, Literal["ipip", "vxlan", "none"]] = {
    "ipip": "ipip",
    "vxlan": "vxlan",
    None: "none",
}
_MODE: dict[EncapMode, Literal["Always", "CrossSubnet", "Never"]] = {
    EncapMode.ALWAYS: "Always",
    EncapMode.CROSS_SUBNET: "CrossSubnet",
    EncapMode.NEVER: "Never",
}


def file_entries(files: dict[str, str]) -> dict[str, FileEntry]:
    """Return {bundle path: digest and install path} for every file but node.json itself."""
    return {
        rel: FileEntry(digest=digest(text), install=install_path(rel))
        for rel, text in sorted(files.items())
        if rel != MANIFEST
    }


def identity(cluster: ClusterPlan, node: NodePlan) -> NodeIdentity:
    """Return who the node is and how it finds its address."""
    return NodeIdentity(
        name=node.name,
        address=node.address,
        interface=node.interface,
        as_number=node.as_number,
        labels=dict(node.labels),
        autodetection_method=cluster.spec.ip_autodetection_method,
    )


def pool_entries(cluster: ClusterPlan, node: NodePlan) -> tuple[PoolEntry, ...]:
    """Return every pool of the cluster (NAT needs them all), marking those serving the node."""
    serving = {pool.name for pool in node.pools}
    return tuple(
        PoolEntry(
            name=pool.name,
            cidr=pool.cidr,
            encapsulation=_ENCAP[pool.encap],
            mode=_MODE[pool.encap_mode],
            nat_outgoing=pool.nat_outgoing,
            serves_node=pool.name in serving,
        )
        for pool in sorted(cluster.pools, key=lambda p: p.cidr)
    )


def bird_section(node: NodePlan) -> BirdSection:
    """Return how BIRD runs: off without sessions; secret includes the agent must write."""
    secrets: dict[str, SecretRef] = {
        session.secret_include: session.password
        for session in node.sessions
        if session.secret_include is not None and session.password is not None
    }
    return BirdSection(config=BIRD_CONFIG, enabled=bool(node.sessions), secrets=secrets)


def build_manifest(cluster: ClusterPlan, node: NodePlan, files: dict[str, str]) -> NodeManifest:
    """Return the node's manifest; `files` are the bundle's other files {path: text}."""
    plane = dataplane(cluster, node)
    return NodeManifest(
        calicc_version=__version__,
        cluster=cluster.name,
        node=identity(cluster, node),
        link_mtu=node.link_mtu,
        pod_mtu=node.pod_mtu,
        pools=pool_entries(cluster, node),
        blocks=tuple(BlockEntry(cidr=b.cidr, pool=b.pool) for b in node.blocks),
        tunnel_address=node.tunnel_address,
        links=plane.links,
        routes=plane.routes,
        neighbors=plane.neighbors,
        fdb=plane.fdb,
        ipsets=ipsets_for(cluster, node),
        jump_rules=jump_rules(cluster, node),
        policies=policy_bindings(cluster),
        sysctls=sysctl_data(cluster, node),
        bird=bird_section(node),
        files=file_entries(files),
    )


def manifest_text(cluster: ClusterPlan, node: NodePlan, files: dict[str, str]) -> str:
    """Return node.json's text: sorted keys, 2-space indent, final newline."""
    return dump_json(build_manifest(cluster, node, files).model_dump(mode="json"))
