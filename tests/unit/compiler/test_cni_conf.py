"""The CNI conflist, checked against the CNI spec's required fields (spec 1.0.0, section
"Configuration format": cniVersion, name matching ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$, plugins each
with a type)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from calicc.contract.names import CONFLIST
from tests.support.clusters import node_file, plan_of, with_

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
VERSIONS = {"0.3.1", "0.4.0", "1.0.0"}


def spec_problems(conf: dict[str, object]) -> list[str]:
    """Return what breaks the CNI spec's rules for a network configuration list."""
    problems = []
    if conf.get("cniVersion") not in VERSIONS:
        problems.append(f"cniVersion {conf.get('cniVersion')!r}")
    name = conf.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(f"name {name!r}")
    plugins = conf.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        return [*problems, "plugins must be a non-empty list"]
    for i, plugin in enumerate(plugins):
        kind = plugin.get("type") if isinstance(plugin, dict) else None
        if not isinstance(kind, str) or not kind or "/" in kind:
            problems.append(f"plugins[{i}].type {kind!r}")
    return problems


def test_validator_rejects_broken_configs() -> None:
    assert spec_problems({"cniVersion": "1.0.0", "name": "ok", "plugins": [{"type": "x"}]}) == []
    assert len(spec_problems({"cniVersion": "2", "name": "-bad", "plugins": [{}]})) == 3
    assert spec_problems({"cniVersion": "1.0.0", "name": "ok", "plugins": []})


def _conflist(tmp_path: Path, **changes: object) -> tuple[str, dict[str, object]]:
    plan = plan_of(tmp_path, with_(**changes))
    text = node_file(plan, "n2", CONFLIST)
    return text, json.loads(text)


def test_conflist_meets_cni_spec_and_chains_portmap_and_bandwidth(tmp_path: Path) -> None:
    text, conf = _conflist(tmp_path)
    assert spec_problems(conf) == []
    assert conf["name"] == "k8s-pod-network"
    assert conf["cniVersion"] == "1.0.0"
    plugins = conf["plugins"]
    assert isinstance(plugins, list)
    assert [p["type"] for p in plugins] == ["calicc", "portmap", "bandwidth"]
    assert plugins[0] == {
        "type": "calicc",
        "mtu": 1480,
        "state_dir": "/var/lib/calicc",
        "bundle": "/etc/calicc/bundle/node.json",
        "ipam": {"type": "calicc-ipam"},
        "capabilities": {"labels": True, "namespaceLabels": True},
    }
    assert plugins[1] == {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}}
    assert plugins[2] == {"type": "bandwidth", "capabilities": {"bandwidth": True}}
    assert text == json.dumps(conf, indent=2, sort_keys=True) + "\n"
    assert "n2" not in text  # the plugin finds its node in the bundle, not in the conflist


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0"])
def test_older_cni_versions_are_selectable(tmp_path: Path, version: str) -> None:
    _, conf = _conflist(tmp_path, cni_version=version)
    assert conf["cniVersion"] == version
    assert spec_problems(conf) == []


def test_mtu_follows_the_cluster_mtu(tmp_path: Path) -> None:
    _, conf = _conflist(tmp_path, mtu=1400)
    plugins = conf["plugins"]
    assert isinstance(plugins, list)
    assert plugins[0]["mtu"] == 1400
