"""`calicc import` maps a BGPPeer's session options onto its bgp.peers entry, or refuses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.calico_import.peer_options import parse_duration
from calicc.compiler.calico_import.run import Imported, import_calico
from calicc.compiler.errors import CaliccError, SpecError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calico_import"
CALICO, IPAM = FIXTURES / "calico.yaml", FIXTURES / "ipam.yaml"
TOR_OPTIONS = "      maxRestartTime: 2m0s\n"  # the node-3-tor BGPPeer's, in the fixture


def with_tor_options(tmp_path: Path, lines: str) -> Path:
    text = CALICO.read_text()
    assert TOR_OPTIONS in text
    path = tmp_path / "calico.yaml"
    path.write_text(text.replace(TOR_OPTIONS, lines))
    return path


def tor_entry(tmp_path: Path, lines: str) -> dict[str, Any]:
    result = import_calico([with_tor_options(tmp_path, lines), IPAM])
    data = yaml.safe_load(result.files["cluster.yaml"])
    (entry,) = (p for p in data["bgp"]["peers"] if p["peer_ip"] == "10.30.1.1")
    assert not [n for n in result.notes if n.name == "node-3-tor" and "Time" in n.field]
    entry.pop("filters", None)  # its BGPFilter's name: bgp_filters' mapping
    return dict(entry)


def test_every_option_is_mapped(tmp_path: Path) -> None:
    entry = tor_entry(
        tmp_path,
        "      maxRestartTime: 1m30s\n"
        "      keepaliveTime: 10s\n"
        "      ttlSecurity: 1\n"
        "      localASNumber: 65010\n"
        "      numAllowedLocalASNumbers: 2\n"
        "      sourceAddress: None\n",
    )
    assert entry == {
        "peer_ip": "10.30.1.1",
        "as_number": 64501,
        "port": 1179,
        "node_selector": "kubernetes.io/hostname == 'node-3'",
        "keep_next_hop": True,
        "keepalive_time": 10,
        "max_restart_time": 90,
        "ttl_security": 1,
        "local_as_number": 65010,
        "num_allowed_local_as": 2,
        "source_address": "None",
    }


def test_next_hop_mode_replaces_keep_original_next_hop(tmp_path: Path) -> None:
    entry = tor_entry(tmp_path, "      nextHopMode: Keep\n")
    assert entry["next_hop_mode"] == "Keep"  # Calico keeps it toward iBGP peers too
    assert "keep_next_hop" not in entry  # Calico ignores keepOriginalNextHop beside it
    entry = tor_entry(tmp_path, "      nextHopMode: Auto\n      ttlSecurity: 0\n")
    assert "next_hop_mode" not in entry
    assert "ttl_security" not in entry


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("      keepaliveTime: 3\n", "spec.keepaliveTime: expected a duration of 1s to 65535s"),
        ("      maxRestartTime: 2h\n", "spec.maxRestartTime: expected a duration of 1s to 4095s"),
        ("      ttlSecurity: 300\n", "spec.ttlSecurity: expected a number from 1 to 255"),
        ("      sourceAddress: Auto\n", "spec.sourceAddress: expected one of UseNodeIP, None"),
        ("      reachableBy: gw-1\n", "spec.reachableBy: expected the gateway's address"),
    ],
)
def test_bad_options_are_located_on_the_calico_resource(
    tmp_path: Path, lines: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        import_calico([with_tor_options(tmp_path, lines), IPAM])
    text = str(caught.value)
    assert "calico.yaml:" in text
    assert f"BGPPeer node-3-tor: {says}" in text, text


def test_an_option_calicc_refuses_fails_the_import(tmp_path: Path) -> None:
    """A reachableBy for a peer on the node's own subnet: the imported cluster would not build."""
    with pytest.raises(CaliccError, match="needs no gateway"):
        import_calico([with_tor_options(tmp_path, "      reachableBy: 10.30.1.254\n"), IPAM])


def _mesh_restart(tmp_path: Path, reflector: bool) -> Imported:
    text = CALICO.read_text()
    spec = "    spec:\n      asNumber: 64512\n"
    rr = "        routeReflectorClusterID: 244.0.0.1\n"
    assert text.count(spec) == 1
    assert text.count(rr) == 1
    text = text.replace(spec, f"{spec}      nodeMeshMaxRestartTime: 45s\n")
    text = text.replace("nodeToNodeMeshEnabled: false", "nodeToNodeMeshEnabled: true")
    path = tmp_path / "calico.yaml"
    path.write_text(text if reflector else text.replace(rr, ""))
    return import_calico([path, IPAM])


def test_the_mesh_restart_time_is_mapped_with_the_mesh(tmp_path: Path) -> None:
    bgp = yaml.safe_load(_mesh_restart(tmp_path, reflector=False).files["cluster.yaml"])["bgp"]
    assert bgp["node_to_node_mesh"]
    assert bgp["node_mesh_max_restart_time"] == 45


def test_the_mesh_restart_time_is_reported_where_reflectors_replace_the_mesh(
    tmp_path: Path,
) -> None:
    result = _mesh_restart(tmp_path, reflector=True)
    assert "node_mesh_max_restart_time" not in result.files["cluster.yaml"]
    (note,) = (n for n in result.notes if n.field == "spec.nodeMeshMaxRestartTime")
    assert note.reason == "calicc opens no mesh when nodes are route reflectors (was 45s)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2m0s", 120.0), ("1h", 3600.0), ("1.5s", 1.5), ("500ms", 0.5), ("90", None), ("", None)],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds
