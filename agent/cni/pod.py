"""What endpoint policy knows about a pod: labels, its namespace's labels, named ports.

They come from the Kubernetes API (agent/cni/kube.py, loaded only when the netconf names a
kubeconfig) or from the runtime's `runtimeConfig` (agent/cni/endpoint_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodFacts:
    """What policy needs to know about a pod."""

    labels: dict[str, str]
    namespace_labels: dict[str, str]
    ports: tuple[tuple[str, str, int], ...] = ()
