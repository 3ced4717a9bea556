"""Which daemon plays each external peer of a lab (lab/speakers.py), and `--gobgp` checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.model.spec import Bgp
from calicc.lab.speakers import played_by_gobgp, reflects, unknown_peers
from calicc.lab.up import LabError, lab_up

BGP = Bgp.model_validate(
    {
        "as_number": 64512,
        "peers": [
            {"peer_ip": "10.0.0.100", "as_number": 64512},
            {"peer_ip": "10.0.0.254", "as_number": 65000},
        ],
    }
)
RR, TOR = BGP.peers


def test_same_as_peer_is_a_gobgp_reflector_other_as_a_bird_tor() -> None:
    assert played_by_gobgp(RR, BGP, ())
    assert reflects(RR, BGP, ())
    assert not played_by_gobgp(TOR, BGP, ())


def test_gobgp_option_plays_a_peer_as_a_plain_neighbor() -> None:
    assert played_by_gobgp(TOR, BGP, ["10.0.0.254"])
    assert not reflects(TOR, BGP, ["10.0.0.254"])
    assert not reflects(RR, BGP, ["10.0.0.100"])  # named: a plain iBGP neighbor


def test_unknown_gobgp_peer_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    assert unknown_peers(BGP, ["10.0.0.254", "10.9.9.9"]) == ["10.9.9.9"]
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "name: sp\nnetwork_cidr: 10.200.0.0/16\n"
        "bgp: {peers: [{peer_ip: 10.0.0.254, as_number: 65000}]}\n"
        "nodes: [{name: n1, address: 10.0.0.1/24}]\n"
    )
    with pytest.raises(LabError, match=r"--gobgp 10\.9\.9\.9: no bgp.peers entry .*10\.0\.0\.254"):
        lab_up(cluster, "spx", tmp_path / "lab", print, gobgp_peers=["10.9.9.9"])
    assert not (tmp_path / "lab").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]
