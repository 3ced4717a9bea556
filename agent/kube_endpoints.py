"""Cluster-wide pods from the Kubernetes API, for the selector and named-port ipsets.

Each reconcile lists the pods and the namespaces of the whole cluster (GET /api/v1/pods and
GET /api/v1/namespaces, with the kubeconfig's credentials through agent/cni/kube.py). To keep
this cheap:

- both lists ask for `resourceVersion=0`, which the API server answers from its watch cache
  instead of a quorum read of etcd; the pod list also leaves out Succeeded and Failed pods with
  a field selector;
- the pods are parsed, and the members computed again, only when either list's
  `metadata.resourceVersion` or the bundle changed.

A failed GET raises AgentError; the caller keeps the last members it had (an API outage never
empties a set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.agent import AgentError
from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get
from calicc.agent.membership import (
    ClusterPod,
    cluster_members,
    namespaces_from_list,
    pods_from_list,
)
from calicc.contract.manifest import NodeManifest

PHASES = "status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"
PODS_PATH = f"/api/v1/pods?resourceVersion=0&fieldSelector={PHASES}"
NAMESPACES_PATH = "/api/v1/namespaces?resourceVersion=0"


def _version(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion", ""))


@dataclass
class KubeSource:
    """The Kubernetes API as a source of cluster-wide pods; remembers what it last computed."""

    kubeconfig: Path
    key: tuple[str, str, str] | None = None  # pods' and namespaces' versions, bundle digest
    pods: tuple[ClusterPod, ...] = ()
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    addresses: frozenset[str] = frozenset()  # of the pods listed (live, in a pool)

    def get(self, path: str) -> dict[str, Any]:
        """GET `path` from the API server, as an AgentError on failure."""
        try:
            return api_get(self.kubeconfig, path)
        except CniError as exc:
            raise AgentError(f"Kubernetes API: {exc.msg}") from exc

    def refresh(self, manifest: NodeManifest, digest: str) -> dict[str, frozenset[str]]:
        """List pods and namespaces and return the runtime sets' cluster-wide members.

        Args:
            manifest: the bundle's node.json (its pools and runtime ipsets).
            digest: the bundle's digest (a new bundle means new selectors).

        Raises:
            AgentError: the API server could not be reached or refused the request.
        """
        pods = self.get(PODS_PATH)
        spaces = self.get(NAMESPACES_PATH)
        key = (_version(pods), _version(spaces), digest)
        if key == self.key and all(key[:2]):
            return self.members
        found = pods_from_list(pods, (p.cidr for p in manifest.pools))
        labels = namespaces_from_list(spaces)
        self.members = cluster_members(manifest.ipsets, found, labels)
        self.pods, self.key = tuple(found), key
        self.addresses = frozenset(p.address for p in found)
        return self.members
