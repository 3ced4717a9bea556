"""Allowed uses and reservations in the lab (root, real tools): a VXLAN cluster whose tunnel
addresses come from a Tunnel-only pool, with a LoadBalancer pool and reservations, brought up
with real BIRD, the real agent and real CNI pods; the matrix passes (pods across nodes through
vxlan.calico, whose VTEP addresses are the Tunnel pool's) and no pod holds a reserved address
or one of the Tunnel or LoadBalancer pool."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from calicc.lab.check import lab_check
from calicc.lab.verify import FAIL, PASS
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLUSTER = """\
name: uses
network_cidr: 10.244.0.0/16
block_size: 28
ipip_mode: Never
vxlan_mode: Always
bgp: {fast_timers: true}
pools:
  - {name: tunnels, cidr: 10.250.0.0/24, block_size: 30, allowed_uses: [Tunnel]}
  - {name: lb, cidr: 192.168.50.0/24, allowed_uses: [LoadBalancer]}
reservations:
  - {cidr: 10.244.0.0/30, name: gateways}
  - {cidr: 10.244.0.17}
  - {cidr: 10.250.0.0/32}
nodes:
  - {name: n1, address: 10.30.0.1/24, max_pods: 8}
  - {name: n2, address: 10.30.0.2/24, max_pods: 8}
"""
RESERVED = (IPv4Network("10.244.0.0/30"), IPv4Network("10.244.0.17/32"))


def test_tunnel_pool_and_reservations_in_the_lab(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER)
    with running_lab(cluster) as state:
        rows = lab_check(state, policy=False)
        assert [r for r in rows if r.status == FAIL] == []
        across = [r for r in rows if r.check == "pod-pod nodes"]
        assert across
        assert all(r.status == PASS for r in across)
        addresses = [IPv4Address(p.address) for p in state.pods.values() if p.address]
        assert len(addresses) == 4
        assert all(a in IPv4Network("10.244.0.0/16") for a in addresses)
        assert not [a for a in addresses if any(a in net for net in RESERVED)]
    lock = (tmp_path / "cluster.lock.yaml").read_text()
    assert "tunnel_address: 10.250.0.1" in lock  # 10.250.0.0 is reserved
    assert "tunnel_address: 10.250.0.4" in lock
