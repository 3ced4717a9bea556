"""Every input error names file, line, field and what would be valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.clusters import problems, write_cluster

GOOD = """\
name: t
network_cidr: 10.244.0.0/16
nodes:
  - name: n1
    address: 10.0.0.1/24
"""


def test_unknown_key_gets_did_you_mean_and_line(tmp_path: Path) -> None:
    text = GOOD + "ipip_mod: Always\n"
    [msg] = problems(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'cluster.yaml'}:6:1: ipip_mod: unknown key")
    assert "did you mean 'ipip_mode'?" in msg


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = GOOD + "    max_pod: 20\n"
    [msg] = problems(tmp_path, text)
    assert ":6:5: nodes[0].max_pod: unknown key; did you mean 'max_pods'?" in msg


def test_all_errors_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = """\
name: t
network_cidr: 10.244.0.1/16
nodes:
  - name: Bad_Name
    address: 10.0.0.1/24
    as_number: 0
    route_reflector_cluster_id: not-an-ip
"""
    found = problems(tmp_path, text)
    assert len(found) == 4
    joined = "\n".join(found)
    assert ":2:1: network_cidr:" in joined
    assert ":4:5: nodes[0].name: 'Bad_Name' is not a DNS-1123 subdomain" in joined
    assert ":6:5: nodes[0].as_number: Input should be greater than or equal to 1" in joined
    assert ":7:5: nodes[0].route_reflector_cluster_id: 'not-an-ip' is not a dotted quad" in joined


def test_as_number_upper_bound(tmp_path: Path) -> None:
    [msg] = problems(tmp_path, GOOD + "bgp:\n  as_number: 4294967296\n")
    assert "bgp.as_number: Input should be less than or equal to 4294967295" in msg


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    [msg] = problems(tmp_path, "name: t\nnodes: [\n  - a: b\n")
    assert msg.startswith(str(tmp_path / "cluster.yaml") + ":3:")
    assert "YAML syntax error" in msg


def test_bad_enum_lists_valid_values(tmp_path: Path) -> None:
    [msg] = problems(tmp_path, GOOD + "ipip_mode: Sometimes\n")
    assert ":6:1: ipip_mode:" in msg
    assert "'Always', 'CrossSubnet' or 'Never'" in msg


def test_bad_selector_is_reported(tmp_path: Path) -> None:
    text = (
        GOOD
        + "bgp:\n  peers:\n    - {peer_ip: 10.0.0.9, as_number: 65000, node_selector: 'rack =='}\n"
    )
    [msg] = problems(tmp_path, text)
    assert "bgp.peers[0].node_selector: invalid selector" in msg


def test_cli_exit_code_and_nothing_written(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, GOOD + "ipip_mod: Always\n")
    result = subprocess.run(
        [sys.executable, "-m", "calicc", "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "did you mean 'ipip_mode'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]
