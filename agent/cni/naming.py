"""Which pod an invocation is for, and the deterministic names derived from it.

Runtimes tell a CNI plugin different amounts about the pod (measured: ../LAB-NOTES of the
project's machine, docs/cni-netconf.md "Pod identity"). One rule, `pod_ref`, turns what was
passed into a namespace, a name and an identity:

| the runtime passes (CNI_ARGS)                  | namespace   | name            | identity  |
|------------------------------------------------|-------------|-----------------|-----------|
| K8S_POD_NAMESPACE and K8S_POD_NAME (kubelet)   | as passed   | as passed       | `ns.name` |
| K8S_POD_NAME only (podman: the container name) | `default`   | container name  | the id    |
| no K8S_* (containerd's ctr, cnitool)           | `default`   | CNI_CONTAINERID | the id    |

The id is CNI_CONTAINERID, unique per container on the host: a container name or a Kubernetes
pod name may be reused while the old one's DEL is still to come, a container id is not (a
Kubernetes pod keeps Calico's `ns.name`, VethNameForWorkload, so its veth is Calico's).
The identity names the host veth (`host_veth_name`) and is recorded with the pod's address,
so DEL and GC find the veth from the record whatever DEL is passed (ctr passes no namespace
path at DEL). Only a Kubernetes pod (both K8S_* arguments) is looked up in the Kubernetes API;
the others take their labels from `runtimeConfig.labels`, in namespace `default`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from calicc.contract.names import IFNAMSIZ, VETH_PREFIX

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class PodRef:
    """The pod of one invocation: its namespace, name, identity and where they came from."""

    namespace: str
    name: str
    identity: str
    source: str  # "kubernetes", "container-name" or "container-id"

    @property
    def in_api(self) -> bool:
        """Return whether the pod is a Kubernetes pod (one the API server knows)."""
        return self.source == "kubernetes"


def pod_ref(args: Mapping[str, str], container_id: str) -> PodRef:
    """Return the pod an invocation is for (the table in the module docstring).

    Examples:
        >>> pod_ref({"K8S_POD_NAMESPACE": "shop", "K8S_POD_NAME": "web-0"}, "c1").identity
        'shop.web-0'
        >>> pod_ref({"K8S_POD_NAME": "Web_1"}, "c1")
        PodRef(namespace='default', name='Web_1', identity='c1', source='container-name')
        >>> pod_ref({}, "box1")
        PodRef(namespace='default', name='box1', identity='box1', source='container-id')
    """
    namespace = args.get("K8S_POD_NAMESPACE", "")
    name = args.get("K8S_POD_NAME", "")
    if namespace and name:
        return PodRef(namespace, name, f"{namespace}.{name}", "kubernetes")
    if name:
        return PodRef(DEFAULT_NAMESPACE, name, container_id, "container-name")
    return PodRef(DEFAULT_NAMESPACE, container_id, container_id, "container-id")


def host_veth_name(identity: str) -> str:
    """Return `cali` + the first 11 hex characters of sha1(identity): 15 characters, IFNAMSIZ.

    Examples:
        >>> host_veth_name("default.web-0")
        'cali0d7763386da'
    """
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
    return (VETH_PREFIX + digest)[:IFNAMSIZ]
