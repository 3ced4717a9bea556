"""calicc trace against the lab: the route the kernel picks, the VXLAN device's packet counter and
the don't-fragment boundary are the trace's path, encapsulation and path MTU (root, real tools).

examples/vxlan-crosssubnet: pods of one rack talk directly, across racks through vxlan.calico
(this kernel has no ipip module, so IPIP paths cannot carry packets here). The lab's pods are
written as a pods file with their labels and the addresses CNI gave them (lab/filepods.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calicc.lab.filepods import write_lab_pods
from calicc.lab.names import ns_name
from calicc.lab.netns import ns_run
from calicc.lab.probe import ping
from calicc.trace.answer import Port, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]
PING = Port("icmp", None)


def tx_packets(ns: str, device: str) -> int:
    shown = json.loads(ns_run(ns, ["ip", "-s", "-j", "link", "show", "dev", device]).stdout)
    return int(shown[0]["stats64"]["tx"]["packets"])


def test_trace_paths_and_mtu_agree_with_the_lab() -> None:
    need_root()
    need_tool("bird", "birdc", "ping", "ip")
    with running_lab(EXAMPLES / "vxlan-crosssubnet" / "cluster.yaml") as state:
        view = TreeView.open(Path(state.root) / "rendered")
        cluster = Cluster(view, load_pods(write_lab_pods(state), view.by_name))
        tracer = Tracer(cluster)
        pods = list(state.pods.values())
        ends = {p.name: cluster.resolve(p.key, None) for p in pods}
        for pod in pods:  # the trace's endpoint chains are those of the veth CNI made
            iface = ends[pod.name].pod.iface  # type: ignore[union-attr]
            host = ns_name(state.name, "node", pod.node)
            assert ns_run(host, ["ip", "link", "show", iface], check=False).returncode == 0
        firsts = [p for p in pods if p.namespace == "default"]
        seen = set()
        for src in firsts:
            for dst in firsts:
                if src.node == dst.node:
                    continue
                found = tracer.trace(ends[src.name], ends[dst.name], PING)
                assert found.route is not None
                assert found.outcome == "allowed"
                node = ns_name(state.name, "node", src.node)
                kernel = ns_run(node, ["ip", "-o", "route", "get", dst.address]).stdout
                assert f" dev {found.route.device} " in kernel, (src.name, dst.name, kernel)
                before = tx_packets(node, "vxlan.calico")
                assert found.largest_ping is not None
                assert ping(src.netns, dst.address, found.largest_ping, dont_fragment=True)
                assert not ping(src.netns, dst.address, found.largest_ping + 1, dont_fragment=True)
                sent = tx_packets(node, "vxlan.calico") - before
                tunnelled = found.route.encapsulation == "vxlan"
                assert (sent > 0) == tunnelled, (src.name, dst.name, sent, found.route.route)
                seen.add(found.route.encapsulation)
        assert seen == {"none", "vxlan"}, "both a direct and a tunnelled pair were traced"
