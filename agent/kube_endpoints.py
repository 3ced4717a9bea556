"""Cluster-wide pods from the Kubernetes API, for the runtime ipsets and the pods' own chains.

The selector and named-port sets hold the matching pods of the whole cluster, and the current
labels of the node's own pods decide which policy chains each pod's endpoint jumps to.

Two ways to read the API (agent/cni/kube.py holds the client):

- one-shot (`calicc apply`): each refresh lists the pods and the namespaces of the cluster
  (GET /api/v1/pods and /api/v1/namespaces with `resourceVersion=0`, answered from the API
  server's watch cache; the pod list leaves out Succeeded and Failed pods);
- watching (`calicc agent`, `watch=True`): two informers (agent/kube_watch.py) list once, then
  watch, and call `on_change` at every event, so the agent reconciles a relabel within moments;
  a refresh then reads their in-memory copies and sends no request.

Either way the pods are parsed, and the members computed again, only when a list's
resourceVersion (one-shot) or an informer's revision (watching), or the bundle, changed.
A failed read raises AgentError; the caller keeps the last members it had (an API outage never
empties a set).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.agent import AgentError
from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get
from calicc.agent.kube_watch import Informer
from calicc.agent.membership import (
    ClusterPod,
    cluster_members,
    namespaces_from_list,
    pods_from_list,
)
from calicc.contract.manifest import NodeManifest

PHASES = "status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"
PODS = "/api/v1/pods"
NAMESPACES = "/api/v1/namespaces"
PODS_QUERY = f"&fieldSelector={PHASES}"
PODS_PATH = f"{PODS}?resourceVersion=0{PODS_QUERY}"
NAMESPACES_PATH = f"{NAMESPACES}?resourceVersion=0"
FIRST_LIST_WAIT = 2.0  # seconds a first refresh waits in all for the informers' first lists


def _version(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion", ""))


@dataclass
class KubeSource:
    """The Kubernetes API as a source of cluster-wide pods; remembers what it last computed."""

    kubeconfig: Path
    watch: bool = False
    on_change: Callable[[], None] = lambda: None
    key: tuple[str, str, str] | None = None  # pods' and namespaces' versions, bundle digest
    pods: tuple[ClusterPod, ...] = ()
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    addresses: frozenset[str] = frozenset()  # of the pods listed (live, in a pool)
    by_address: dict[str, ClusterPod] = field(default_factory=dict)
    informers: tuple[Informer, Informer] | None = None

    def get(self, path: str) -> dict[str, Any]:
        """GET `path` from the API server, as an AgentError on failure."""
        try:
            return api_get(self.kubeconfig, path)
        except CniError as exc:
            raise AgentError(f"Kubernetes API: {exc.msg}") from exc

    def lists(self) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        """Return (pods' version, namespaces' version, pod list, namespace list)."""
        if not self.watch:
            pods, spaces = self.get(PODS_PATH), self.get(NAMESPACES_PATH)
            return _version(pods), _version(spaces), pods, spaces
        if self.informers is None:
            self.informers = (
                Informer(self.kubeconfig, PODS, PODS_QUERY, self.on_change),
                Informer(self.kubeconfig, NAMESPACES, "", self.on_change),
            )
            for informer in self.informers:
                informer.start()
            deadline = time.monotonic() + FIRST_LIST_WAIT
            for informer in self.informers:
                informer.synced.wait(max(0.0, deadline - time.monotonic()))
        pod_informer, space_informer = self.informers
        for informer in self.informers:
            if informer.error is not None or not informer.synced.is_set():
                raise AgentError(f"Kubernetes API: {informer.error or 'no answer yet'}")
        pod_rev, pod_items = pod_informer.snapshot()
        space_rev, space_items = space_informer.snapshot()
        return f"w{pod_rev}", f"w{space_rev}", {"items": pod_items}, {"items": space_items}

    def stop(self) -> None:
        """Stop the informers, if watching."""
        for informer in self.informers or ():
            informer.stop()

    def refresh(self, manifest: NodeManifest, digest: str) -> dict[str, frozenset[str]]:
        """Read pods and namespaces and return the runtime sets' cluster-wide members.

        Args:
            manifest: the bundle's node.json (its pools and runtime ipsets).
            digest: the bundle's digest (a new bundle means new selectors).

        Raises:
            AgentError: the API server could not be reached or refused the request.
        """
        pods_version, spaces_version, pods, spaces = self.lists()
        key = (pods_version, spaces_version, digest)
        if key == self.key and all(key[:2]):
            return self.members
        pools = (p.cidr for p in manifest.pools)  # both families: IPv6 ones fill cali60 sets
        found = pods_from_list(pods, pools)
        self.namespaces = namespaces_from_list(spaces)
        self.members = cluster_members(manifest.ipsets, found, self.namespaces)
        self.pods, self.key = tuple(found), key
        self.addresses = frozenset(p.address for p in found)
        self.by_address = {p.address: p for p in found}
        return self.members
