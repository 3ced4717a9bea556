"""node.json: the node's own facts, its own files and the cluster settings with their digests,
and for each role the shared file that plays it (`source`, whose digest cluster/index.json
lists); assembled with the cluster files, the node's complete picture."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from calicc.compiler.build import compile_cluster
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.render import render_cluster, render_node
from calicc.compiler.targets.ipset import cluster_ipsets
from calicc.compiler.targets.iptables import jump_rules, policy_bindings
from calicc.compiler.targets.routes import dataplane
from calicc.compiler.targets.shared import shared_plan
from calicc.compiler.targets.sysctl import sysctl_values
from calicc.contract.manifest import ClusterIndex, NodeFile, NodeManifest, SecretRef
from calicc.contract.names import (
    BIRD_CONFIG,
    CLUSTER_INDEX,
    CONFLIST,
    IPTABLES_FILE,
    ROUTES_FILE,
    SYSCTL_FILE,
)
from tests.support.clusters import load, plan_of, with_

BUILT_FROM = {"cluster/cluster.json"}
ROLES = {ROUTES_FILE, SYSCTL_FILE, CONFLIST, IPTABLES_FILE}


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _node_file(
    tmp_path: Path, node: str = "n1", **changes: object
) -> tuple[NodeFile, dict[str, str]]:
    plan = plan_of(tmp_path, with_(**changes))
    files = render_node(plan, plan.node(node))
    return NodeFile.model_validate_json(files["node.json"]), files


def _manifest(tmp_path: Path, node: str = "n1", **changes: object) -> NodeManifest:
    return compile_cluster(load(tmp_path, with_(**changes))).node_manifest(node)


def test_every_file_is_listed_with_its_sha256(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    files = render_node(plan, plan.node("n1"))
    assert set(files) == {BIRD_CONFIG, "node.json"}  # a node's directory holds only these
    node_file = NodeFile.model_validate_json(files["node.json"])
    cluster = render_cluster(plan)
    assert set(node_file.files) == {BIRD_CONFIG} | BUILT_FROM | ROLES
    assert node_file.files[BIRD_CONFIG].digest == _sha(files[BIRD_CONFIG])
    for rel in BUILT_FROM:
        assert node_file.files[rel].digest == _sha(cluster[rel]), rel


def test_each_role_names_its_shared_file_whose_digest_the_cluster_index_lists(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path, with_())
    node_file = NodeFile.model_validate_json(render_node(plan, plan.node("n1"))["node.json"])
    cluster = render_cluster(plan)
    index = ClusterIndex.model_validate_json(cluster[CLUSTER_INDEX])
    for role in ROLES:
        entry = node_file.files[role]
        assert entry.digest is None, role  # one home for the text, one for its digest
        assert entry.source == shared_plan(plan).sources["n1"][role]
        assert index.files[entry.source].digest == _sha(cluster[entry.source]), role
    assert node_file.files[IPTABLES_FILE].source == "cluster/iptables/ipip.rules"


def test_install_paths_are_relative_to_the_agent_root(tmp_path: Path) -> None:
    install = {rel: entry.install for rel, entry in _manifest(tmp_path).files.items()}
    assert install["bird.conf"] == "etc/calicc/bird/bird.conf"
    assert install["cni/10-calicc.conflist"] == "etc/cni/net.d/10-calicc.conflist"
    assert install["sysctl/99-calicc.conf"] == "etc/sysctl.d/99-calicc.conf"
    assert install["routes/routes.sh"] == "etc/calicc/routes/routes.sh"
    assert install["cluster/nodes.tsv"] == "etc/calicc/cluster/nodes.tsv"
    assert install["cluster/routes.sh"] == "etc/calicc/cluster/routes.sh"
    assert install["cluster/ipsets.restore"] == "etc/calicc/cluster/ipsets.restore"
    assert install["iptables/iptables.rules"] == "etc/calicc/iptables/iptables.rules"
    assert install["cluster/iptables/ipip.rules"] == "etc/calicc/cluster/iptables/ipip.rules"
    assert all(path and not path.startswith("/") for path in install.values())


def test_node_json_holds_only_the_node_s_own_facts(tmp_path: Path) -> None:
    text = render_node(*_plan_and_node(tmp_path))["node.json"]
    for other in ("10.0.0.3", "n2"):  # the other node's address and name
        assert other not in text
    data = json.loads(text)
    assert "ipsets" not in data
    assert "policies" not in data
    assert "neighbors" not in data
    assert "jump_rules" not in data  # cluster.json's, the same for every node


def test_a_node_joining_changes_no_other_node_s_files(tmp_path: Path) -> None:
    three = compile_cluster(load(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always")))
    nodes = [*with_()["nodes"], {"name": "n4", "address": "10.0.0.5/24"}]
    four = compile_cluster(
        load(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always", nodes=nodes))
    )
    changed = sorted(rel for rel, text in four.files.items() if three.files.get(rel) != text)
    assert [rel for rel in changed if rel.startswith("nodes/") and "/n4/" not in rel] == []
    assert {"cluster/nodes.tsv", "cluster/ipsets.restore", "cluster/index.json"} <= set(changed)
    peer = four.node_manifest("n1")  # the others learn of n4 from the node table
    assert any(f.dst == four.plan.node("n4").address.ip for f in peer.fdb)


def _plan_and_node(tmp_path: Path) -> tuple[ClusterPlan, NodePlan]:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    return plan, plan.node("n1")


def test_assembled_manifest_carries_the_plan(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    node = plan.node("n2")
    manifest = _manifest(tmp_path, "n2", ipip_mode="Never", vxlan_mode="Always")
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
    assert manifest.sysctls == sysctl_values(tuple(link.name for link in plane.links))
    assert manifest.route_protocol == 81
    assert not manifest.bird.enabled  # VXLAN only: no BGP session


def test_pools_mark_those_serving_the_node(tmp_path: Path) -> None:
    pools = [
        {"name": "rack", "cidr": "10.50.0.0/16", "node_selector": "rack == 'r1'"},
        {"name": "old", "cidr": "10.60.0.0/16", "disabled": True, "ipip_mode": "Never"},
    ]
    nodes = [{"name": "n1", "address": "10.0.0.1/24", "labels": {"rack": "r1"}}]
    manifest = _manifest(tmp_path, pools=pools, nodes=nodes, nat_outgoing=False)
    got = {p.name: (p.encapsulation, p.mode, p.nat_outgoing, p.serves_node) for p in manifest.pools}
    assert got == {
        "default-ipv4-ippool": ("ipip", "Always", False, True),
        "rack": ("ipip", "Always", False, True),
        "old": ("none", "Never", False, False),
    }
    assert {p.name for p in manifest.pools if p.disabled} == {"old"}


def test_bgp_passwords_become_secret_refs_never_values(tmp_path: Path) -> None:
    bgp = {
        "mesh_password": {"env": "MESH_PW"},
        "peers": [{"peer_ip": "10.0.0.254", "as_number": 65000, "password": {"file": "/s/tor"}}],
    }
    node_file, files = _node_file(tmp_path, bgp=bgp)
    assert node_file.bird.enabled
    assert node_file.bird.config == BIRD_CONFIG
    assert node_file.bird.secrets == {
        "secrets/Global_10_0_0_254.conf": SecretRef(file="/s/tor"),
        "secrets/Mesh_10_0_0_2.conf": SecretRef(env="MESH_PW"),
        "secrets/Mesh_10_0_0_3.conf": SecretRef(env="MESH_PW"),
    }
    for include in node_file.bird.secrets:
        assert f'include "{include}";' in files[BIRD_CONFIG]


def test_node_json_is_deterministic_json(tmp_path: Path) -> None:
    _, files = _node_file(tmp_path)
    text = files["node.json"]
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert list(files)[-1] == "node.json"


def test_ipsets_jump_rules_and_policies_come_from_the_policy_targets(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    manifest = _manifest(tmp_path)
    assert manifest.ipsets == cluster_ipsets(plan)
    assert manifest.ipsets  # at least the all-pools and masq-pools sets
    assert manifest.jump_rules == jump_rules()  # from cluster.json, the same for every node
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
    (binding,) = compiled.node_manifest("n1").policies
    assert (binding.namespace, binding.name) == ("web", "default-deny-ingress")
    assert binding.ingress_chain is not None
    assert binding.ingress_chain.startswith("cali-pi-")
    assert binding.egress_chain is None
