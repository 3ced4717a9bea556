"""IBM Cloud Private config.yaml + hosts inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.errors import SpecError
from calicc.compiler.icp import load_icp, parse_hosts

CONFIG = """\
cluster_name: icp
default_admin_user: admin
network_type: calico
network_cidr: 10.1.0.0/16
service_cluster_ip_range: 10.0.0.1/24
calico_ipip_enabled: false
calico_tunnel_mtu: 1430
calico_ip_autodetection_method: can-reach={{ groups['master'][0] }}
"""
HOSTS = """\
[master]
10.10.25.70 calicc_prefix=24

[worker]
10.10.25.71 calicc_prefix=24
w2 ansible_host=10.10.25.72 calicc_prefix=24

[proxy]
10.10.25.70
"""


def write(tmp_path: Path, config: str = CONFIG, hosts: str = HOSTS) -> tuple[Path, Path]:
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / "hosts").write_text(hosts)
    return tmp_path / "config.yaml", tmp_path / "hosts"


def test_icp_keys_and_hosts_become_a_cluster(tmp_path: Path) -> None:
    spec = load_icp(*write(tmp_path)).spec
    assert spec.name == "icp"
    assert str(spec.service_cluster_ip_range) == "10.0.0.0/24"
    assert spec.ipip_mode == "Never"
    assert spec.mtu == 1430
    assert spec.ip_autodetection_method == "can-reach=10.10.25.70"
    nodes = {n.name: n for n in spec.nodes}
    assert sorted(nodes) == ["10.10.25.70", "10.10.25.71", "w2"]  # one node per host
    assert str(nodes["w2"].address) == "10.10.25.72/24"
    assert nodes["10.10.25.70"].labels == {
        "node-role.kubernetes.io/master": "true",
        "node-role.kubernetes.io/proxy": "true",
    }


def test_group_vars_give_defaults(tmp_path: Path) -> None:
    hosts = "[all:vars]\ncalicc_prefix=22\n[master]\n10.10.25.70\n"
    spec = load_icp(*write(tmp_path, hosts=hosts)).spec
    assert str(spec.nodes[0].address) == "10.10.25.70/22"


def test_misspelt_network_key_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_icp(*write(tmp_path, config=CONFIG + "calico_ipip_mod: Always\n"))
    [problem] = err.value.problems
    assert problem.line == 9
    assert "did you mean 'calico_ipip_mode'?" in problem.message


def test_unresolvable_group_reference(tmp_path: Path) -> None:
    config = CONFIG.replace("groups['master'][0]", "groups['boot'][0]")
    with pytest.raises(SpecError) as err:
        load_icp(*write(tmp_path, config=config))
    [problem] = err.value.problems
    assert problem.line == 8
    assert "inventory groups are: master (1 host), proxy (1 host), worker (2 hosts)" in (
        problem.message
    )


def test_bad_value_points_into_the_hosts_file(tmp_path: Path) -> None:
    hosts = HOSTS + "[management]\n10.10.25.73 calicc_as_number=0 calicc_prefix=24\n"
    with pytest.raises(SpecError) as err:
        load_icp(*write(tmp_path, hosts=hosts))
    [problem] = err.value.problems
    assert problem.file == str(tmp_path / "hosts")
    assert problem.line == 11
    assert problem.field == "nodes[3].as_number"


def test_network_type_must_be_calico(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="network_type"):
        load_icp(*write(tmp_path, config=CONFIG.replace("calico\n", "nsx-t\n", 1)))


def test_hosts_parser_ignores_children_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("# c\n[k8s:children]\nmaster\n[master]\n1.2.3.4 # note\n")
    assert list(parse_hosts(path).hosts) == ["1.2.3.4"]


def test_convert_gives_the_same_bundles(tmp_path: Path) -> None:
    from calicc.compiler.build import compile_cluster, load_cluster
    from calicc.compiler.icp import icp_cluster_yaml
    from tests.conftest import EXAMPLES

    icp = EXAMPLES / "icp"
    (tmp_path / "cluster.yaml").write_text(icp_cluster_yaml(icp / "config.yaml", icp / "hosts"))
    (tmp_path / "cluster.lock.yaml").write_text((icp / "cluster.lock.yaml").read_text())
    converted = compile_cluster(load_cluster(tmp_path / "cluster.yaml")).files
    original = compile_cluster(load_icp(icp / "config.yaml", icp / "hosts")).files
    converted.pop("index.json")
    original.pop("index.json")
    assert converted == original
