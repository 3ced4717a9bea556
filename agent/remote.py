"""Endpoints on other nodes: which source the agent reads, and what it keeps when that fails.

A NetworkPolicy peer selected by podSelector/namespaceSelector must match pods on every node,
so the runtime ipsets hold the node's own endpoints (its CNI records, agent/endpoints.py)
united with the cluster's other pods from one source:

- the Kubernetes API (agent/kube_endpoints.py) when a kubeconfig is configured: `calicc agent
  --kubeconfig PATH` (or `calicc apply --kubeconfig PATH`), else the bundle conflist's calicc
  plugin `kubernetes.kubeconfig` (a path under --root, as the CNI plugin reads it);
- otherwise the peer endpoint records under `<state_dir>/peers/` (agent/peers.py documents the
  layout and how to distribute them).

With the API, the node's own pods that the API already lists are taken from the API too: their
current labels and namespace labels decide both their set memberships and which policy chains
their endpoints jump to (`current`), so a relabelled pod or namespace moves between sets and
policies without a new ADD; a CNI record's labels count only until the API lists its pod. The
running agent watches the API (agent/kube_watch.py, `watch=True`) and is woken by each event.

The source is read in its own reconcile part ("remote") before the ipsets. When it fails, the
error is reported and the last members read stay in force; an agent that never read the source
yet keeps the members the kernel's sets already hold (it adds, it does not remove), so neither
an API outage nor an agent restart drops remote pods from the sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from calicc.agent.cni.endpoint_policy import EndpointRecord
from calicc.agent.endpoints import Endpoints, runtime_members
from calicc.agent.files import under
from calicc.agent.kube_endpoints import KubeSource
from calicc.agent.membership import Members, union
from calicc.agent.peers import PeersFingerprint, peer_members, peers_fingerprint
from calicc.contract.manifest import NodeManifest


def conflist_kubeconfig(root: Path, conflist_text: str | None) -> Path | None:
    """Return the calicc plugin's `kubernetes.kubeconfig` under `root`, if the conflist has one.

    Examples:
        >>> text = '{"plugins": [{"type": "calicc", "kubernetes": {"kubeconfig": "/k.conf"}}]}'
        >>> conflist_kubeconfig(Path("/r"), text)
        PosixPath('/r/k.conf')
        >>> conflist_kubeconfig(Path("/r"), '{"plugins": [{"type": "calicc"}]}') is None
        True
    """
    plugins = json.loads(conflist_text).get("plugins", []) if conflist_text else []
    for plugin in plugins:
        kube = plugin.get("kubernetes") if isinstance(plugin, dict) else None
        if plugin.get("type") == "calicc" and isinstance(kube, dict) and kube.get("kubeconfig"):
            return under(root, str(kube["kubeconfig"]))
    return None


@dataclass
class Remote:
    """The other nodes' endpoints: the source in use and the last members it gave."""

    kubeconfig: Path | None = None  # explicit (--kubeconfig), used as given
    watch: bool = False  # list once, then watch (the running agent); else list every refresh
    on_change: Callable[[], None] = lambda: None  # called by the watch at every API event
    kube: KubeSource | None = None
    peers_key: tuple[PeersFingerprint, str] | None = None
    members: dict[str, frozenset[str]] | None = None  # None: not read successfully yet
    known: frozenset[str] | None = None  # pod addresses the API listed (None: no API)
    _local: tuple[Endpoints, frozenset[str], dict[str, frozenset[str]]] | None = None

    def refresh(
        self, manifest: NodeManifest, digest: str, state_dir: Path, conf: Path | None
    ) -> None:
        """Read the source again (an AgentError leaves the last members in place).

        Args:
            manifest: the bundle's node.json.
            digest: the bundle's digest.
            state_dir: the CNI plugin's state directory under the root (holds peers/).
            conf: the conflist's kubeconfig (conflist_kubeconfig), used without --kubeconfig.
        """
        path = self.kubeconfig or conf
        if path is not None:
            if self.kube is None or self.kube.kubeconfig != path:
                if self.kube is not None:
                    self.kube.stop()
                self.kube = KubeSource(path, self.watch, self.on_change)
            self.members = dict(self.kube.refresh(manifest, digest))
            self.known = self.kube.addresses
            return
        self.known = None
        key = (peers_fingerprint(state_dir, manifest.node.name), digest)
        if self.members is None or key != self.peers_key:
            self.members = peer_members(state_dir, manifest)
            self.peers_key = key

    @property
    def facts_key(self) -> object:
        """Return what `current` answers from: it changes whenever a pod's facts may have.

        Never None: the drift watch (agent/drift.py) takes a None in its key as "unknown".
        """
        return self.kube.key[:2] if self.known is not None and self.kube and self.kube.key else ()

    def current(self, record: EndpointRecord) -> EndpointRecord:
        """Return `record` with its pod's current labels and namespace labels from the API.

        A pod the API does not list (yet), or lists in another namespace (the address of a
        deleted pod, reused), or any pod without an API, keeps its ADD facts.
        """
        if self.known is None or self.kube is None:
            return record
        pod = self.kube.by_address.get(record.address)
        if pod is None or pod.namespace != record.namespace:  # not listed yet, or a stale entry
            return record
        spaces = self.kube.namespaces.get(pod.namespace, {})
        if (pod.namespace, pod.labels, spaces) == (
            record.namespace,
            record.labels,
            record.namespace_labels,
        ):
            return record
        return replace(
            record, namespace=pod.namespace, labels=dict(pod.labels), namespace_labels=spaces
        )

    def stop(self) -> None:
        """Stop watching the API, if watching."""
        if self.kube is not None:
            self.kube.stop()

    def local_members(self, live: Endpoints, manifest: NodeManifest) -> Members:
        """Return the node's own endpoints' members, with the API's facts where it has them.

        A pod the API already lists is taken from the API (its current labels and namespace
        labels); the CNI record counts only for a pod the API does not list yet (its address
        joins its sets the moment ADD returns) or when no API is configured.
        """
        if self.known is None:
            return live.members
        cached = self._local
        if cached is None or cached[0] is not live or cached[1] is not self.known:
            known = self.known
            records = [r for r in live.records if r.address not in known]
            cached = (live, known, runtime_members(records, manifest))
            self._local = cached
        return cached[2]


def runtime_sets(
    local: Members, remote: Members | None, current: Mapping[str, frozenset[str] | None]
) -> dict[str, frozenset[str]]:
    """Return the runtime sets' desired members: local endpoints united with remote ones.

    Args:
        local: members from the node's own endpoint records (every runtime set is a key).
        remote: members from the remote source, or None when it was never read successfully.
        current: the kernel's members of the owned sets (read before the records).

    Examples:
        >>> local = {"s": frozenset({"10.0.0.1"})}
        >>> sorted(runtime_sets(local, None, {"s": frozenset({"10.0.0.9"})})["s"])
        ['10.0.0.1', '10.0.0.9']
        >>> sorted(runtime_sets(local, {"s": frozenset()}, {"s": frozenset({"10.0.0.9"})})["s"])
        ['10.0.0.1']
    """
    if remote is not None:
        return union(local, {k: v for k, v in remote.items() if k in local})
    kept = {name: current.get(name) or frozenset() for name in local}
    return union(local, kept)
