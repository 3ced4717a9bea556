"""Communities and BGP filters, proved by what the speakers learn (issue 15).

One lab for the module: two dual-stack nodes (a mesh) with real BIRD, three external peers
played by GoBGP, 10.31.0.100 and fd00:31::100 in AS 65000 (eBGP) and 10.31.0.101 in the
cluster's AS 64512 (iBGP, a plain neighbor), and a BIRD ToR at 10.31.0.102 in AS 65100 (the
lab's own, lab/tor.py). What their RIBs and the nodes' BIRD tables and kernels hold shows:
- communities: the default pool's blocks carry bgp.prefix_advertisements' standard and large
  communities, the extra pool's blocks their pool's `communities`, also over the mesh;
- at the BIRD ToR too: communities, and a peer's filter rejecting what the node learned over
  BGP (source RemotePeers) and one pool's blocks, and prepending the other's;
- export filters: a global filter's Reject on a prefix-length range keeps the /28 out of the
  peer's RIB while the /24 beside it arrives, and its iBGP-only rule (peer_type) keeps the
  extra pool off the iBGP session alone; a peer's own filter prepends the AS path and adds
  a community; on the iBGP peer, a filter sets the local preference the peer sees;
- import filters: a route GoBGP announces and the filter rejects is in neither the node's BIRD
  table nor its kernel, while another of the pool, with the community the filter matches, is
  in both and carries the local preference the filter set;
- IPv6: the IPv6 pool's blocks carry its prefix's communities at the IPv6 GoBGP, and an
  export_v6 filter rejects one prefix and prepends another;
- calicc trace reads the filters as the speakers apply them: what it says each node sends
  each peer (prefixes, AS paths, communities, iBGP local preference) is what the peer holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path

import pytest

from calicc.compiler.build import build, load_cluster
from calicc.contract.names import V4
from calicc.lab.bird import bird_rib, kernel_routes, start_bird, stop_bird
from calicc.lab.gobgp import rib_paths, wait_neighbors
from calicc.lab.harness import BgpLab, bgp_lab
from calicc.lab.netns import ns_run
from calicc.lab.rib import RibPath, by_prefix
from calicc.lab.tor import tor_config
from calicc.lab.wait import poll
from calicc.trace.bgp import Speakers
from calicc.trace.view import TreeView
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

EBGP, IBGP, TOR, EBGP6 = "10.31.0.100", "10.31.0.101", "10.31.0.102", "fd00:31::100"
CLUSTER = f"""\
name: bgpfilt
network_cidr: 10.200.0.0/16
network_cidr_v6: fd00:200::/56
block_size: 24
block_size_v6: 120
ipip_mode: Never
pools:
  - {{name: extra, cidr: 10.201.0.0/16, block_size: 24, communities: ["65001:7", "65001:8:9"]}}
bgp:
  as_number: 64512
  node_to_node_mesh: true
  fast_timers: true
  communities:
    - {{name: gold, value: "65000:100"}}
    - {{name: big, value: "65000:1:2"}}
  prefix_advertisements:
    - {{cidr: 10.200.0.0/16, communities: [gold, big]}}
    - {{cidr: "fd00:200::/56", communities: ["65006:6", "65006:0:6"]}}
  filters:
    - name: short-only
      export_v4:
        - {{action: Reject, cidr: 10.211.0.0/16, match_operator: In, prefix_length: {{min: 25}}}}
        - {{action: Reject, cidr: 10.201.0.0/16, match_operator: In, peer_type: iBGP}}
    - name: edge
      export_v4:
        - action: Accept
          cidr: 10.210.0.0/16
          match_operator: Equal
          operations:
            - {{prepend_as_path: {{prefix: [64512, 64512]}}}}
            - {{add_community: {{value: "65000:999"}}}}
      import_v4:
        - {{action: Reject, cidr: 10.200.250.0/24, match_operator: Equal}}
        - action: Accept
          cidr: 10.200.251.0/24
          match_operator: Equal
          communities: {{values: ["65000:7"]}}
          operations: [{{set_local_preference: {{value: 250}}}}]
    - name: tor
      export_v4:
        - {{action: Reject, source: RemotePeers}}
        - {{action: Reject, cidr: 10.200.0.0/16, match_operator: In}}
        - action: Accept
          cidr: 10.201.0.0/16
          match_operator: In
          operations: [{{prepend_as_path: {{prefix: [64512]}}}}]
    - name: edge6
      export_v6:
        - {{action: Reject, cidr: "fd00:211::/48", match_operator: In}}
        - action: Accept
          cidr: "fd00:210::/48"
          match_operator: Equal
          operations: [{{prepend_as_path: {{prefix: [64512]}}}}]
    - name: prefer
      export_v4:
        - action: Accept
          cidr: 10.200.0.0/16
          match_operator: In
          operations: [{{set_local_preference: {{value: 300}}}}]
  global_filters: [short-only]
  peers:
    - peer_ip: {EBGP}
      as_number: 65000
      export: [10.210.0.0/16, 10.211.0.0/24, 10.211.1.0/28]
      filters: [edge]
    - {{peer_ip: {IBGP}, as_number: 64512, filters: [prefer]}}
    - {{peer_ip: {TOR}, as_number: 65100, filters: [tor]}}
    - {{peer_ip: "{EBGP6}", as_number: 65000, export: ["fd00:210::/48", "fd00:211::/64"],
        filters: [edge6]}}
nodes:
  - {{name: node-1, address: 10.31.0.11/24, address_v6: "fd00:31::11/64", max_pods: 250}}
  - {{name: node-2, address: 10.31.0.12/24, address_v6: "fd00:31::12/64", max_pods: 250}}
"""
REJECTED, PREFERRED, PLAIN = "10.200.250.0/24", "10.200.251.0/24", "10.200.252.0/24"


@dataclass(frozen=True)
class Running:
    """The module's lab and its BIRD ToR's control socket."""

    bgp: BgpLab
    tor: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    tmp = tmp_path_factory.mktemp("bgpfilt")
    cluster = tmp / "cluster.yaml"
    cluster.write_text(CLUSTER, encoding="utf-8")
    with bgp_lab(cluster, tmp / "lab", gobgp_peers=[EBGP, IBGP, EBGP6]) as lab:
        conf = tmp / "tor.conf"
        conf.write_text(tor_config(lab.plan, IPv4Address(TOR), 65100), encoding="utf-8")
        tor = start_bird(_speaker(lab, TOR), conf, tmp / "run", "tor")
        try:
            lab.wait_sessions()
            for address in (EBGP, IBGP):
                names = sorted(wait_neighbors(_speaker(lab, address)))
                assert names == ["10.31.0.11", "10.31.0.12"]
            assert sorted(wait_neighbors(_speaker(lab, EBGP6))) == ["fd00:31::11", "fd00:31::12"]
            yield Running(lab, tor.sock)
        finally:
            stop_bird(tor)


@pytest.fixture
def lab(running: Running) -> BgpLab:
    return running.bgp


def _speaker(lab: BgpLab, address: str) -> str:
    return next(s.ns for s in lab.topo.speakers if s.name == address)


def _learned(ns: str, prefixes: set[str]) -> dict[str, list[RibPath]]:
    def probe() -> dict[str, list[RibPath]] | None:
        table = by_prefix(rib_paths(ns))
        return table if prefixes <= set(table) else None

    return poll(probe, 15, f"GoBGP in {ns} learns {sorted(prefixes)}")


def _blocks(lab: BgpLab) -> dict[str, tuple[str, str]]:
    """Return every node's block: (its pool, the node's address)."""
    return {
        str(b.cidr): (b.pool, str(n.address.ip))
        for n in lab.plan.nodes
        for b in n.blocks
        if n.address is not None
    }


def test_communities_reach_the_ebgp_peer(lab: BgpLab) -> None:
    blocks = _blocks(lab)
    assert {pool for pool, _ in blocks.values()} == {"default-ipv4-ippool", "extra"}
    table = _learned(_speaker(lab, EBGP), set(blocks))
    for prefix, (pool, owner) in blocks.items():
        (path,) = table[prefix]
        assert path.next_hop == owner
        assert path.as_path == (64512,)
        if pool == "extra":
            assert (path.communities, path.large_communities) == (("65001:7",), ("65001:8:9",))
        else:
            assert (path.communities, path.large_communities) == (("65000:100",), ("65000:1:2",))


def test_the_bird_tor_sees_communities_and_its_filter(running: Running) -> None:
    blocks = _blocks(running.bgp)
    extra = {p for p, (pool, _) in blocks.items() if pool == "extra"}
    sock = running.tor

    def probe() -> dict[str, list[RibPath]] | None:
        table = by_prefix(p for p in bird_rib(sock) if p.prefix in blocks)
        return table if extra <= set(table) else None

    table = poll(probe, 15, "the BIRD ToR learns the extra pool's blocks")
    assert set(table) == extra  # the default pool's blocks: rejected by the ToR's filter
    for prefix, (path,) in table.items():  # from its node only: no node re-advertises the other's
        assert path.next_hop == blocks[prefix][1]
        assert path.as_path == (64512, 64512)
        assert (path.communities, path.large_communities) == (("65001:7",), ("65001:8:9",))


def test_communities_travel_the_mesh(lab: BgpLab) -> None:
    blocks = {p for p, (pool, owner) in _blocks(lab).items() if owner == "10.31.0.11"}
    sock = lab.daemons.birds["node-2"].sock

    def probe() -> dict[str, RibPath] | None:
        found = {p.prefix: p for p in bird_rib(sock) if p.prefix in blocks}
        return found if set(found) == blocks else None

    for prefix, path in poll(probe, 15, "node-2 learns node-1's blocks").items():
        assert path.communities in (("65000:100",), ("65001:7",)), (prefix, path)


def test_export_filters_reject_by_length_and_prepend(lab: BgpLab) -> None:
    ns = _speaker(lab, EBGP)
    table = _learned(ns, {"10.210.0.0/16", "10.211.0.0/24"})
    assert "10.211.1.0/28" not in table  # the global filter: /25 and longer inside 10.211/16
    for path in table["10.210.0.0/16"]:
        assert path.as_path == (64512, 64512, 64512)
        assert path.communities == ("65000:999",)
    assert {p.as_path for p in table["10.211.0.0/24"]} == {(64512,)}
    assert len(table["10.210.0.0/16"]) == 2  # one path from each node


def test_export_filter_sets_local_preference_on_ibgp(lab: BgpLab) -> None:
    blocks = {p for p, (pool, _) in _blocks(lab).items() if pool == "default-ipv4-ippool"}
    table = _learned(_speaker(lab, IBGP), blocks)
    assert {p.local_pref for prefix in blocks for p in table[prefix]} == {300}
    # the global filter's iBGP-only rule: the extra pool's blocks stay off this iBGP session
    # (the eBGP GoBGP and the ToR learn them: the tests above)
    assert {pool for prefix, (pool, _) in _blocks(lab).items() if prefix in table} == {
        "default-ipv4-ippool"
    }


def _announce(ns: str, prefix: str, *attributes: str) -> None:
    args = ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", prefix]
    ns_run(ns, [*args, *attributes])


def test_import_filters_keep_out_and_set_preference(lab: BgpLab) -> None:
    ns = _speaker(lab, EBGP)
    _announce(ns, REJECTED, "community", "65000:7")
    _announce(ns, PREFERRED, "community", "65000:7")
    _announce(ns, PLAIN)
    sock = lab.daemons.birds["node-1"].sock

    def probe() -> dict[str, RibPath] | None:
        found = {p.prefix: p for p in bird_rib(sock) if p.next_hop == EBGP}
        return found if {PREFERRED, PLAIN} <= set(found) else None

    table = poll(probe, 15, "node-1's BIRD learns the announced routes")
    assert REJECTED not in table
    assert table[PREFERRED].local_pref == 250
    assert table[PREFERRED].communities == ("65000:7",)
    assert table[PLAIN].local_pref == 100  # calicc's default import: BIRD's default
    node = next(h.ns for h in lab.topo.nodes if h.name == "node-1")

    def kernel() -> set[str] | None:
        dsts = {str(r.get("dst")) for r in kernel_routes(node)}
        return dsts if {PREFERRED, PLAIN} <= dsts else None

    assert REJECTED not in poll(kernel, 15, "node-1's kernel gets the imported routes")


def test_ipv6_communities_and_filters(lab: BgpLab) -> None:
    blocks = {
        str(b.cidr): str(n.address_v6.ip)
        for n in lab.plan.nodes
        for b in n.blocks_v6
        if n.address_v6
    }
    assert len(blocks) == 2
    table = _learned(_speaker(lab, EBGP6), {*blocks, "fd00:210::/48"})
    for prefix, owner in blocks.items():
        (path,) = table[prefix]
        assert path.next_hop == owner
        assert (path.communities, path.large_communities) == (("65006:6",), ("65006:0:6",))
    assert "fd00:211::/64" not in table  # edge6's Reject
    assert {p.as_path for p in table["fd00:210::/48"]} == {(64512, 64512)}  # and its prepend


def test_trace_reads_the_filters_as_the_peers_rib_shows(running: Running, tmp_path: Path) -> None:
    """calicc trace's reading of the filters (trace/bgp_filters.py, Speakers.exported) says
    what every external peer learns from every node: which prefixes (the ToR's filter rejects
    the default pool, short-only a /28, edge6 a /64...), with which AS path, communities and
    (iBGP) local preference."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER, encoding="utf-8")
    build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    view = TreeView.open(tmp_path / "rendered")
    speakers = Speakers(view.bird_conf, view.node_at)
    checked = 0
    for peer in (EBGP, IBGP, TOR, EBGP6):
        want = _predicted(running.bgp, view, speakers, peer)
        prefixes = {p for p, _ in want} | set(TRACE_EXPORTS.get(peer, []))
        assert _wait_seen(running, peer, set(want), prefixes) == want, peer
        checked += len(want)
    assert checked >= MIN_CHECKED


TRACE_EXPORTS = {
    EBGP: ["10.210.0.0/16", "10.211.0.0/24", "10.211.1.0/28"],
    EBGP6: ["fd00:210::/48", "fd00:211::/64"],
}
MIN_CHECKED = 12  # blocks and exported prefixes, per node and peer, that the peers learn


def _predicted(
    lab: BgpLab, view: TreeView, speakers: Speakers, peer: str
) -> dict[tuple[str, str], tuple[object, ...]]:
    """Return what the trace says `peer` learns: (prefix, next hop) -> attributes."""
    version = ip_address(peer).version
    want: dict[tuple[str, str], tuple[object, ...]] = {}
    for node in lab.plan.nodes:
        address = node.address if version == V4 else node.address_v6
        session = speakers.peers_with(node.name, ip_address(peer))
        assert address is not None
        assert session is not None
        blocks = [b.cidr for b in (node.blocks if version == V4 else node.blocks_v6)]
        assert {c for _, c in view.row(node.name).blocks if c.version == version} == set(blocks)
        for prefix in [*blocks, *map(ip_network, TRACE_EXPORTS.get(peer, []))]:
            sent, _ = speakers.exported(node.name, session, prefix)
            if sent is not None:
                pref = (sent.local_pref or 100) if peer == IBGP else None
                want[(str(prefix), str(address.ip))] = _attributes(
                    sent.path, sent.communities, pref
                )
    return want


def _wait_seen(
    running: Running, peer: str, keys: set[tuple[str, str]], prefixes: set[str]
) -> dict[tuple[str, str], tuple[object, ...]]:
    """Return what `peer` holds of `prefixes` once it holds at least `keys`."""

    def probe() -> dict[tuple[str, str], tuple[object, ...]] | None:
        lab = running.bgp
        table = bird_rib(running.tor) if peer == TOR else rib_paths(_speaker(lab, peer))
        got = {
            (p.prefix, p.next_hop): _attributes(
                p.as_path, {*p.communities, *p.large_communities},
                p.local_pref if peer == IBGP else None,
            )
            for p in table
            if p.prefix in prefixes
        }  # fmt: skip
        return got if keys <= set(got) else None

    return poll(probe, 15, f"{peer} learns what the trace says")


def _attributes(
    path: tuple[int, ...], communities: Iterable[str], pref: int | None
) -> tuple[object, ...]:
    return path, tuple(sorted(communities)), pref
