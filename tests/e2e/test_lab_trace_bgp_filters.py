"""calicc trace through a ToR whose export filter rejects a pool, against the lab's kernels.

Two nodes with no node-to-node mesh, each in its own AS, peer with a BIRD ToR (lab/tor.py,
`next hop keep`); the `tor` filter on that peer rejects the `hidden` pool's blocks on export,
and on import one of node-2's default-pool blocks when it comes from a peer (source), over an
`eth*` interface, with the AS path (ToR, node-2). The trace says node-1 reaches node-2's other
default-pool block through the ToR, and neither that one nor the hidden blocks, naming the
rule on node-2 (export) or node-1 (import); node-1's kernel and the ToR's table agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from calicc.compiler.build import build, load_cluster
from calicc.lab.bird import bird_rib, kernel_routes, start_bird, stop_bird
from calicc.lab.harness import BgpLab, bgp_lab
from calicc.lab.tor import tor_config
from calicc.lab.wait import poll
from calicc.trace.bgp import Speakers
from calicc.trace.route import Forward, forward
from calicc.trace.view import TreeView
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

TOR = "10.32.0.102"
HIDDEN, DEFAULT = IPv4Network("10.203.0.0/16"), IPv4Network("10.202.0.0/16")
REFUSED = IPv4Network("10.202.0.192/26")  # node-2's second default-pool block
CLUSTER = f"""\
name: trflt
network_cidr: {DEFAULT}
block_size: 26
ipip_mode: Never
pools:
  - {{name: hidden, cidr: {HIDDEN}, block_size: 26}}
bgp:
  as_number: 64512
  node_to_node_mesh: false
  fast_timers: true
  filters:
    - name: tor
      export_v4:
        - {{action: Reject, cidr: {HIDDEN}, match_operator: In}}
      import_v4:
        - {{action: Reject, cidr: {REFUSED}, match_operator: Equal, source: RemotePeers,
            interface: "eth*", as_path_prefix: [65000, 65012]}}
  peers:
    - {{peer_ip: {TOR}, as_number: 65000, filters: [tor]}}
nodes:
  - {{name: node-1, address: 10.32.0.11/24, as_number: 65011}}
  - {{name: node-2, address: 10.32.0.12/24, as_number: 65012}}
"""


@dataclass(frozen=True)
class Running:
    """The lab, its ToR's control socket and the trace's view of the same build."""

    lab: BgpLab
    tor: Path
    view: TreeView


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    need_root()
    need_tool("bird", "birdc")
    tmp = tmp_path_factory.mktemp("trflt")
    cluster = tmp / "cluster.yaml"
    cluster.write_text(CLUSTER, encoding="utf-8")
    build(load_cluster(cluster), tmp / "rendered")
    with bgp_lab(cluster, tmp / "lab") as lab:
        ns = next(s.ns for s in lab.topo.speakers if s.name == TOR)
        conf = tmp / "tor.conf"
        conf.write_text(tor_config(lab.plan, IPv4Address(TOR), 65000), encoding="utf-8")
        tor = start_bird(ns, conf, tmp / "run", "tor")
        try:
            lab.wait_sessions()
            yield Running(lab, tor.sock, TreeView.open(tmp / "rendered"))
        finally:
            stop_bird(tor)


def _blocks(view: TreeView, node: str, pool: IPv4Network) -> set[IPv4Network]:
    return {c for _, c in view.row(node).blocks if isinstance(c, IPv4Network) and c.subnet_of(pool)}


def _trace(view: TreeView, block: IPv4Network) -> Forward:
    speakers = Speakers(view.bird_conf, view.node_at)
    return forward(view, speakers, view.row("node-1"), block[1], None)


def test_trace_and_kernel_agree_on_the_filtered_pool(running: Running) -> None:
    view = running.view
    shown, hidden = _blocks(view, "node-2", DEFAULT), _blocks(view, "node-2", HIDDEN)
    assert len(shown) == len(hidden) == 2
    assert REFUSED in shown
    shown.remove(REFUSED)
    refused = _trace(view, REFUSED)
    assert refused.kind == "unroutable"
    assert "it is rejected by bgp.filters tor import_v4[0] (Reject) on node-1" in refused.why
    for block in shown:
        found = _trace(view, block)
        assert (found.kind, str(found.via)) == ("bgp", "10.32.0.12")
        assert [x.through for x in found.learned] == [(f"external peer {TOR}",)]
    for block in hidden:
        found = _trace(view, block)
        assert found.kind == "unroutable"
        assert "it is rejected by bgp.filters tor export_v4[0] (Reject) on node-2" in found.why
    node = running.lab.topo.node("node-1").ns

    def kernel() -> dict[str, str] | None:
        routes = {str(r.get("dst")): str(r.get("gateway")) for r in kernel_routes(node)}
        return routes if {str(b) for b in shown} <= set(routes) else None

    routes = poll(kernel, 20, "node-1's kernel learns node-2's default-pool blocks")
    assert {routes[str(b)] for b in shown} == {"10.32.0.12"}
    assert not {str(b) for b in {*hidden, REFUSED}} & set(routes)  # the trace's unroutable
    tor = {p.prefix for p in bird_rib(running.tor)}
    assert {str(b) for b in {*shown, REFUSED}} <= tor  # exported: node-1 refused it
    assert not {str(b) for b in hidden} & tor
