"""node.json: the node's own facts and the files it was built with (contract.manifest.NodeFile).

It is built after the node's bird.conf, and after the cluster part, because it lists each file
and where the agent installs it (relative to the agent's --root): bird.conf and the cluster
settings its files follow from (cluster/cluster.json) with their digests, and the shared file
that plays each other role by path (its digest is cluster/index.json's). The rest of the
cluster part (node table, policy, ipsets, the shared files' text) changes without changing any
node's files.
"""

from __future__ import annotations

from functools import lru_cache

from calicc import __version__
from calicc.compiler.bgp_services import service_ips
from calicc.compiler.emit import digest, dump_json
from calicc.compiler.lock import Adopted
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.targets.cluster import node_blocks
from calicc.compiler.targets.cni import NETWORK_NAME
from calicc.compiler.targets.ip6tables import has_ipv6
from calicc.compiler.targets.routes import blackholes, tunnel_links
from calicc.compiler.targets.sysctl import sysctl_values
from calicc.contract.manifest import (
    AdoptedPod,
    BirdSection,
    BlockEntry,
    FileEntry,
    NodeFile,
    NodeIdentity,
    SecretRef,
)
from calicc.contract.names import BIRD_CONFIG, MANIFEST, install_path
from calicc.contract.services import ServiceIps


def file_entries(files: dict[str, str]) -> dict[str, FileEntry]:
    """Return {bundle path: digest and install path} for every file but node.json itself."""
    return {
        rel: FileEntry(digest=digest(text), install=install_path(rel))
        for rel, text in sorted(files.items())
        if rel != MANIFEST
    }


@lru_cache(maxsize=64)
def _shared_entries(sources: tuple[tuple[str, str], ...]) -> dict[str, FileEntry]:
    """Return node.json's entries of the shared files it names (one set per kind of node)."""
    return {
        role: FileEntry(source=path, install=install_path(role)) for role, path in sorted(sources)
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
        address_v6=node.address_v6,
        autodetection_method_v6=(
            None if node.address_v6 is None else cluster.spec.ip6_autodetection_method
        ),
    )


def bird_section(node: NodePlan, services: ServiceIps | None = None) -> BirdSection:
    """Return how BIRD runs: off without sessions of either family; what the agent writes."""
    sessions = (*node.sessions, *node.sessions_v6)
    secrets: dict[str, SecretRef] = {
        session.secret_include: session.password
        for session in sessions
        if session.secret_include is not None and session.password is not None
    }
    return BirdSection(
        config=BIRD_CONFIG, enabled=bool(sessions), secrets=secrets, services=services
    )


def adopted_pods(adopted: tuple[Adopted, ...]) -> tuple[AdoptedPod, ...] | None:
    """Return node.json's `adopted`: the lock's entries under the handle DEL computes."""
    if not adopted:
        return None
    return tuple(
        AdoptedPod(
            address=a.address,
            handle=f"{NETWORK_NAME}.{a.container_id}",
            container_id=a.container_id,
            ifname=a.ifname,
            namespace=a.pod.partition("/")[0] if a.pod else None,
            pod=a.pod.partition("/")[2] if a.pod else None,
        )
        for a in adopted
    )


def build_manifest(
    cluster: ClusterPlan,
    node: NodePlan,
    files: dict[str, str],
    cluster_files: dict[str, FileEntry],
    sources: dict[str, str],
) -> NodeFile:
    """Return node.json's model.

    `files` are the node's other files ({path: text}); `cluster_files` the entries of the
    cluster settings node.json names (computed once per build); `sources` the shared file of
    each role ({role: cluster path}).
    """
    links = tunnel_links(cluster, node)
    return NodeFile(
        calicc_version=__version__,
        cluster=cluster.name,
        node=identity(cluster, node),
        link_mtu=node.link_mtu,
        pod_mtu=node.pod_mtu,
        pools=tuple(sorted(pool.name for pool in node.pools)),
        blocks=tuple(BlockEntry(cidr=b.cidr, pool=b.pool) for b in node_blocks(node)),
        tunnel_address=node.tunnel_address,
        vtep_mac=node.vtep_mac,
        tunnel_address_v6=node.tunnel_address_v6,
        vtep_mac_v6=node.vtep_mac_v6,
        links=links,
        routes=blackholes(node),
        sysctls=sysctl_values(tuple(link.name for link in links), has_ipv6(node)),
        bird=bird_section(node, service_ips(cluster.spec, node)),
        files={**file_entries(files), **cluster_files, **_shared_entries(tuple(sources.items()))},
        adopted=adopted_pods(node.adopted),
    )


def manifest_text(
    cluster: ClusterPlan,
    node: NodePlan,
    files: dict[str, str],
    cluster_files: dict[str, FileEntry],
    sources: dict[str, str],
) -> str:
    """Return node.json's text: sorted keys, 2-space indent, final newline."""
    model = build_manifest(cluster, node, files, cluster_files, sources)
    return dump_json(model.model_dump(mode="json"))
