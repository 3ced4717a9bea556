"""node.json: built from the plan, lists every other bundle file with its digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from calicc.compiler.build import compile_cluster
from calicc.compiler.render import render_node
from calicc.compiler.targets.ipset import ipsets_for
from calicc.compiler.targets.iptables import jump_rules, policy_bindings
from calicc.compiler.targets.routes import dataplane
from calicc.compiler.targets.sysctl import sysctl_data
from calicc.contract.manifest import NodeManifest, SecretRef
from tests.support.clusters import load, plan_of, with_


def _manifest(tmp_path: Path, node: str = "n1", **changes: object) -> tuple[NodeManifest, dict]:
    plan = plan_of(tmp_path, with_(**changes))
    files = render_node(plan, plan.node(node))
    return NodeManifest.model_validate_json(files["node.json"]), files


def test_every_other_file_is_listed_with_its_sha256(tmp_path: Path) -> None:
    manifest, files = _manifest(tmp_path)
    others = {rel: text for rel, text in files.items() if rel != "node.json"}
    assert set(manifest.files) == set(others)
    assert {"bird/bird.conf", "routes/routes.sh", "sysctl/99-calicc.conf"} <= set(others)
    for rel, text in others.items():
        want = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        assert manifest.files[rel].digest == want, rel


def test_install_paths_are_relative_to_the_agent_root(tmp_path: Path) -> None:
    manifest, _ = _manifest(tmp_path)
    install = {rel: entry.install for rel, entry in manifest.files.items()}
    assert install["bird/bird.conf"] == "etc/calicc/bird/bird.conf"
    assert install["cni/10-calicc.conflist"] == "etc/cni/net.d/10-calicc.conflist"
    assert install["sysctl/99-calicc.conf"] == "etc/sysctl.d/99-calicc.conf"
    assert install["routes/routes.sh"] == "etc/calicc/routes/routes.sh"
    assert all(path and not path.startswith("/") for path in install.values())


def test_manifest_carries_the_plan(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    node = plan.node("n2")
    files = render_node(plan, node)
    manifest = NodeManifest.model_validate_json(files["node.json"])
    plane = dataplane(plan, node)
    assert manifest.node.name == "n2"
    assert manifest.node.address == node.address
    assert manifest.cluster == "t"
    assert (manifest.link_mtu, manifest.pod_mtu) == (1500, 1450)
    assert [(b.cidr, b.pool) for b in manifest.blocks] == [(b.cidr, b.pool) for b in node.blocks]
    assert manifest.tunnel_address == node.tunnel_address
    assert manifest.links == plane.links
    assert manifest.routes == plane.routes
    assert manifest.neighbors == plane.neighbors
    assert manifest.fdb == plane.fdb
    assert len(manifest.fdb) == 2
    assert manifest.sysctls == sysctl_data(plan, node)
    assert manifest.route_protocol == 81
    assert not manifest.bird.enabled  # VXLAN only: no BGP session


def test_pools_mark_those_serving_the_node(tmp_path: Path) -> None:
    pools = [
        {"name": "rack", "cidr": "10.50.0.0/16", "node_selector": "rack == 'r1'"},
        {"name": "old", "cidr": "10.60.0.0/16", "disabled": True, "ipip_mode": "Never"},
    ]
    nodes = [{"name": "n1", "address": "10.0.0.1/24", "labels": {"rack": "r1"}}]
    manifest, _ = _manifest(tmp_path, pools=pools, nodes=nodes, nat_outgoing=False)
    got = {p.name: (p.encapsulation, p.mode, p.nat_outgoing, p.serves_node) for p in manifest.pools}
    assert got == {
        "default-ipv4-ippool": ("ipip", "Always", False, True),
        "rack": ("ipip", "Always", False, True),
        "old": ("none", "Never", False, False),
    }


def test_bgp_passwords_become_secret_refs_never_values(tmp_path: Path) -> None:
    bgp = {
        "mesh_password": {"env": "MESH_PW"},
        "peers": [{"peer_ip": "10.0.0.254", "as_number": 65000, "password": {"file": "/s/tor"}}],
    }
    manifest, files = _manifest(tmp_path, bgp=bgp)
    assert manifest.bird.enabled
    assert manifest.bird.config == "bird/bird.conf"
    assert manifest.bird.secrets == {
        "secrets/Global_10_0_0_254.conf": SecretRef(file="/s/tor"),
        "secrets/Mesh_10_0_0_2.conf": SecretRef(env="MESH_PW"),
        "secrets/Mesh_10_0_0_3.conf": SecretRef(env="MESH_PW"),
    }
    for include in manifest.bird.secrets:
        assert f'include "{include}";' in files["bird/bird.conf"]


def test_node_json_is_deterministic_json(tmp_path: Path) -> None:
    _, files = _manifest(tmp_path)
    text = files["node.json"]
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert list(files)[-1] == "node.json"


def test_ipsets_jump_rules_and_policies_come_from_the_policy_targets(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    node = plan.node("n1")
    manifest = NodeManifest.model_validate_json(render_node(plan, node)["node.json"])
    assert manifest.ipsets == ipsets_for(plan, node)
    assert manifest.ipsets  # at least the all-pools and masq-pools sets
    assert manifest.jump_rules == jump_rules(plan, node)
    assert manifest.jump_rules
    assert manifest.policies == policy_bindings(plan)


def test_policy_bindings_name_each_policy_chain(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "deny.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: default-deny-ingress, namespace: web}\n"
        "spec: {podSelector: {}, policyTypes: [Ingress]}\n"
    )
    compiled = compile_cluster(load(tmp_path, with_(policies=["policies/*.yaml"])))
    manifest = NodeManifest.model_validate_json(compiled.files["nodes/n1/node.json"])
    (binding,) = manifest.policies
    assert (binding.namespace, binding.name) == ("web", "default-deny-ingress")
    assert binding.ingress_chain is not None
    assert binding.ingress_chain.startswith("cali-pi-")
    assert binding.egress_chain is None
