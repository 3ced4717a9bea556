"""Deterministic names: the host-side veth of a pod (Calico's VethNameForWorkload)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from calicc.contract.names import IFNAMSIZ, VETH_PREFIX


def pod_identity(args: Mapping[str, str], container_id: str) -> str:
    """Return `<namespace>.<pod>` from CNI_ARGS (Kubernetes), else the container id."""
    namespace = args.get("K8S_POD_NAMESPACE", "")
    pod = args.get("K8S_POD_NAME", "")
    return f"{namespace}.{pod}" if namespace and pod else container_id


def host_veth_name(identity: str) -> str:
    """Return `cali` + the first 11 hex characters of sha1(identity): 15 characters, IFNAMSIZ.

    Examples:
        >>> host_veth_name("default.web-0")
        'cali0d7763386da'
    """
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
    return (VETH_PREFIX + digest)[:IFNAMSIZ]
