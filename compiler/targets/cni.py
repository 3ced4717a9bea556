"""The CNI network configuration list (cluster/cni/mtu-<MTU>.conflist).

It depends on a node only through the node's pod MTU: one file per MTU, which every node of
that MTU installs as /etc/cni/net.d/10-calicc.conflist. The plugin finds the node in the
bundle it names (node.json), so the conflist does not repeat the node's name.

The calicc plugin wires each pod (veth, /32, routes) and uses calicc-ipam for addresses from the
node's blocks; the reference portmap and bandwidth plugins are chained after it, as in Calico's
own 10-calico.conflist (CALICO-FACTS 3.6).
"""

from __future__ import annotations

from calicc.compiler.model.spec import KubernetesApi
from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import BUNDLE_MANIFEST, STATE_DIR

NETWORK_NAME = "k8s-pod-network"


def calicc_plugin(mtu: int, kubernetes: KubernetesApi | None = None) -> dict[str, object]:
    """Return the calicc plugin's configuration: MTU, state and bundle paths, the API."""
    api = {} if kubernetes is None else {"kubernetes": {"kubeconfig": kubernetes.kubeconfig}}
    return {
        "type": "calicc",
        "mtu": mtu,
        "state_dir": STATE_DIR,
        "bundle": BUNDLE_MANIFEST,
        "ipam": {"type": "calicc-ipam"},
        # Runtimes without a Kubernetes API (the lab, plain containerd) pass pod and namespace
        # labels as runtimeConfig; a runtime passes only what a plugin declares here.
        "capabilities": {"labels": True, "namespaceLabels": True},
        **api,
    }


def conflist(cluster: ClusterPlan, mtu: int) -> dict[str, object]:
    """Return the conflist as data, in the cniVersion the cluster file selects."""
    return {
        "name": NETWORK_NAME,
        "cniVersion": cluster.spec.cni_version,
        "plugins": [
            calicc_plugin(mtu, cluster.spec.kubernetes),
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    }
