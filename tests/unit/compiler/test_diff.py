"""calicc diff: per-node summaries between git revisions of rendered trees, built in tmp repos."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from calicc.compiler.build import build, load_cluster
from calicc.compiler.cli import app
from calicc.compiler.diff import compare_facts, diff_command, digests_only
from calicc.compiler.diff_facts import (
    bird_peers,
    cluster_facts,
    iptables_chains,
    node_facts,
    shared_facts,
)
from calicc.compiler.gitdiff import GitError, Snapshot, blob_id, rendered_trees
from tests.conftest import EXAMPLES


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout


def render(cluster_dir: Path, edit: dict[str, object] | None = None) -> None:
    path = cluster_dir / "cluster.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(edit or {})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    inputs = load_cluster(path)
    build(inputs, cluster_dir / "rendered")


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo holding the minikube example rendered, committed once."""
    git(tmp_path, "init", "-q", "-b", "main")
    cluster = tmp_path / "net"
    cluster.mkdir()
    for name in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLES / "minikube-ipip" / name, cluster / name)
    render(cluster)
    commit(tmp_path, "first render")
    return tmp_path


def add_node_drop_nat_mtu(repo: Path) -> None:
    data = yaml.safe_load((repo / "net" / "cluster.yaml").read_text())
    nodes = [*data["nodes"], {"name": "minikube-m04", "address": "192.168.49.5/24"}]
    render(repo / "net", {"nodes": nodes, "nat_outgoing": False, "mtu": 1400})


def test_node_added_and_peers_nat_mtu_changes_between_revisions(repo: Path) -> None:
    add_node_drop_nat_mtu(repo)
    commit(repo, "add a node, no NAT, MTU 1400")
    text = diff_command(repo, "HEAD~1", "HEAD")
    assert text.startswith("## calicc diff: `HEAD~1` → `HEAD`\n")
    assert "### `net/rendered`" in text
    assert "| `minikube-m04` | added |" in text
    cluster = text.split("#### cluster (every node)\n", 1)[1].split("\n\n", 1)[0]
    assert "- nodes\n  - added: `minikube-m04` 192.168.49.5/24, 2 blocks" in cluster
    assert "- NAT outgoing\n  - changed: `pool default-ipv4-ippool` on → off" in cluster
    assert (
        "- ipsets\n  - changed: `cali40all-hosts-net`, `cali40masq-ipam-pools` (1 member) → (0"
        in cluster
    )
    assert "- policy chains\n  - changed: `nat/cali-nat-outgoing` (1 rule) → (0 rules)" in cluster
    assert (
        "- shared files\n  - added: `cluster/cni/mtu-1400.conflist` CNI conflist\n"
        "  - removed: `cluster/cni/mtu-1480.conflist` CNI conflist\n"
        "  - changed: `cluster/iptables/ipip.rules`"
    ) in cluster
    assert text.count("NAT outgoing") == 1  # once for the cluster, not once per node
    assert text.count("nat/cali-nat-outgoing") == 1
    section = text.split("#### `minikube` (changed)\n", 1)[1].split("\n\n", 1)[0]
    assert "- BGP peers\n  - added: `Mesh_192_168_49_5` 192.168.49.5 AS 64512" in section
    assert "`pod` 1480 → 1400" in section
    assert (
        "- shared files\n  - changed: `CNI conflist` cluster/cni/mtu-1480.conflist → "
        "cluster/cni/mtu-1400.conflist"
    ) in section
    assert "removed" not in section
    assert "- files changed: `bird.conf`, `node.json`" in section
    added = text.split("#### `minikube-m04` (added)\n", 1)[1]
    assert "`iptables rules` cluster/iptables/ipip.rules" in added
    assert "files changed" not in added


def test_node_removed_and_blocks_in_the_working_tree(repo: Path) -> None:
    data = yaml.safe_load((repo / "net" / "cluster.yaml").read_text())
    render(repo / "net", {"nodes": data["nodes"][:2]})
    text = diff_command(repo / "net", "HEAD", None)
    assert "`HEAD` → `working tree`" in text
    assert "| `minikube-m03` | removed |" in text
    removed = text.split("#### `minikube-m03` (removed)\n", 1)[1]
    assert (
        "- blocks\n  - removed: `10.244.1.0/26` pool default-ipv4-ippool, `10.244.1.64/26`"
        in removed
    )
    minikube = text.split("#### `minikube` (changed)\n", 1)[1].split("\n\n", 1)[0]
    assert "- BGP peers\n  - removed: `Mesh_192_168_49_4` 192.168.49.4 AS 64512" in minikube


def test_a_vxlan_node_joining_is_one_cluster_line_and_one_node(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    cluster = tmp_path / "net"
    cluster.mkdir()
    for name in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLES / "vxlan" / name, cluster / name)
    render(cluster)
    commit(tmp_path, "first render")
    data = yaml.safe_load((cluster / "cluster.yaml").read_text())
    address = "10.30.0.19/24"
    render(cluster, {"nodes": [*data["nodes"], {"name": "worker-4", "address": address}]})
    commit(tmp_path, "add worker-4")
    text = diff_command(tmp_path, "HEAD~1", "HEAD")
    assert "- VXLAN peers\n  - added: `worker-4` VTEP " in text
    table = text.split("| node | change |\n| --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    assert table == "| `worker-4` | added |"


def test_no_change_says_so(repo: Path) -> None:
    assert "No change to any rendered tree." in diff_command(repo, "HEAD", None)


def test_unknown_revision_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(GitError, match="no-such-rev"):
        diff_command(repo, "no-such-rev", None)


def write_tree(root: Path, rules: dict[str, str], sources: dict[str, str]) -> None:
    """A v3 tree: the shared rules files ({kind: text}) and nodes naming theirs ({node: kind})."""
    rendered = root / "rendered"
    (rendered / "cluster" / "iptables").mkdir(parents=True, exist_ok=True)
    for kind, text in rules.items():
        (rendered / "cluster" / "iptables" / f"{kind}.rules").write_text(text)
    for node, kind in sources.items():
        (rendered / "nodes" / node).mkdir(parents=True, exist_ok=True)
        source = {"install": "x", "source": f"cluster/iptables/{kind}.rules"}
        manifest = {"files": {"iptables/iptables.rules": source}}
        (rendered / "nodes" / node / "node.json").write_text(json.dumps(manifest))
    (rendered / "index.json").write_text(json.dumps({"nodes": sorted(sources)}))


RULES_V1 = """*filter
:cali-pi-web - [0:0]
:cali-pi-db - [0:0]
-A cali-pi-web -p tcp --dport 80 -j ACCEPT
-A cali-pi-db -p tcp --dport 5432 -j ACCEPT
COMMIT
*nat
:cali-nat-outgoing - [0:0]
-A cali-nat-outgoing -j MASQUERADE
COMMIT
"""


def test_policy_chains_added_removed_changed_once_for_every_kind(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    vxlan_v1 = RULES_V1.replace("-j MASQUERADE", "-j MASQUERADE --random-fully")
    write_tree(tmp_path, {"ipip": RULES_V1, "vxlan": vxlan_v1}, {"n1": "ipip", "n2": "vxlan"})
    commit(tmp_path, "v1")
    rules = RULES_V1.replace("--dport 80", "--dport 8080").replace(":cali-pi-db - [0:0]\n", "")
    rules = rules.replace("-A cali-pi-db -p tcp --dport 5432 -j ACCEPT\n", "")
    rules = rules.replace("COMMIT\n*nat", ":cali-pi-new - [0:0]\nCOMMIT\n*nat")
    vxlan = rules.replace("-j MASQUERADE", "-j MASQUERADE --random-fully")
    write_tree(tmp_path, {"ipip": rules, "vxlan": vxlan}, {"n1": "ipip", "n2": "vxlan"})
    commit(tmp_path, "v2")
    text = diff_command(tmp_path, "HEAD~1", "HEAD")
    cluster = text.split("#### cluster (every node)\n", 1)[1].split("\n\n", 1)[0]
    assert "- policy chains\n" in cluster
    assert "  - added: `filter/cali-pi-new` (0 rules)\n" in cluster
    assert "  - removed: `filter/cali-pi-db` (1 rule)\n" in cluster
    assert "  - changed: `filter/cali-pi-web`\n" in cluster
    assert text.count("cali-pi-web") == 1  # once, though both kinds' files hold it
    assert "nat/cali-nat-outgoing" not in text
    assert "- shared files\n  - changed: `cluster/iptables/ipip.rules`, " in cluster
    assert "No node's own files changed." in text  # a policy is the cluster's, not a node's


def test_a_chain_differing_between_kinds_is_a_fact_per_file() -> None:
    vxlan = RULES_V1.replace("-j MASQUERADE", "-j MASQUERADE --random-fully")
    facts = cluster_facts(
        {"cluster/iptables/ipip.rules": RULES_V1, "cluster/iptables/vxlan.rules": vxlan}
    )
    assert sorted(facts["policy chains"]) == [
        "filter/cali-pi-db",
        "filter/cali-pi-web",
        "nat/cali-nat-outgoing (ipip)",
        "nat/cali-nat-outgoing (vxlan)",
    ]


def test_a_node_moving_to_another_kind_names_the_files() -> None:
    def manifest(kind: str) -> dict[str, str]:
        source = {"install": "x", "source": f"cluster/iptables/{kind}.rules"}
        return {"node.json": json.dumps({"files": {"iptables/iptables.rules": source}})}

    assert compare_facts(node_facts(manifest("ipip")), node_facts(manifest("ipip-vxlan"))) == [
        "- shared files",
        "  - changed: `iptables rules` cluster/iptables/ipip.rules → "
        "cluster/iptables/ipip-vxlan.rules",
    ]


def test_shared_files_of_the_cluster_part_by_role() -> None:
    blobs = {
        "cluster/cni/mtu-1450.conflist": "b1",
        "cluster/iptables/vxlan.rules": "b2",
        "cluster/sysctl/vxlan.conf": "b3",
        "cluster/routes.sh": "b4",
        "cluster/nodes.tsv": "b5",
        "cluster/index.json": "b6",
    }
    shown = {k: v.split("\0")[0] for k, v in shared_facts(blobs)["shared files"].items()}
    assert shown == {
        "cluster/cni/mtu-1450.conflist": "CNI conflist",
        "cluster/iptables/vxlan.rules": "iptables rules",
        "cluster/sysctl/vxlan.conf": "kernel settings",
        "cluster/routes.sh": "routes script",
    }


def test_a_cluster_settings_change_lists_no_node(repo: Path) -> None:
    render(repo / "net", {"nat_outgoing": False})
    text = diff_command(repo, "HEAD", None)
    cluster = text.split("#### cluster (every node)\n", 1)[1].split("\n\n", 1)[0]
    assert "- NAT outgoing\n  - changed: `pool default-ipv4-ippool` on → off" in cluster
    assert cluster.endswith(
        "- node.json names the new digest of `cluster/cluster.json`: 3 nodes changed by that alone"
    )
    assert "| node | change |" not in text
    assert "No node's own files changed." in text


def test_digests_only_sees_any_other_change() -> None:
    def manifest(digest: str, mtu: int = 1480) -> str:
        entry = {"digest": digest, "install": "etc/calicc/cluster/cluster.json"}
        own = {"digest": "sha256:b", "install": "etc/calicc/bird/bird.conf"}
        files = {"cluster/cluster.json": entry, "bird.conf": own}
        return json.dumps({"files": files, "pod_mtu": mtu})

    assert digests_only(manifest("sha256:1"), manifest("sha256:2")) == ["cluster/cluster.json"]
    assert digests_only(manifest("sha256:1"), manifest("sha256:1")) == []  # formatting alone
    assert digests_only(manifest("sha256:1"), manifest("sha256:2", 1400)) is None
    assert digests_only(manifest("sha256:1"), manifest("sha256:1").replace('b"', 'c"')) is None


def test_iptables_chains_parse_tables_and_rules() -> None:
    assert iptables_chains(RULES_V1) == {
        "filter/cali-pi-db": "(1 rule)\0-A cali-pi-db -p tcp --dport 5432 -j ACCEPT",
        "filter/cali-pi-web": "(1 rule)\0-A cali-pi-web -p tcp --dport 80 -j ACCEPT",
        "nat/cali-nat-outgoing": "(1 rule)\0-A cali-nat-outgoing -j MASQUERADE",
    }


BIRD = """protocol bgp Mesh_10_0_0_2 from calicc_peer {
  description "node b (node-to-node mesh)";
  neighbor 10.0.0.2 as 64512;
  passive on;
}

protocol bgp Global_10_0_0_9 from calicc_peer {
  neighbor 10.0.0.9 port 1790 as 65001;
}
"""


def test_bird_peers_and_a_changed_body() -> None:
    peers = bird_peers(BIRD)
    assert {k: v.split("\0")[0] for k, v in peers.items()} == {
        "Mesh_10_0_0_2": "10.0.0.2 AS 64512 (node b (node-to-node mesh))",
        "Global_10_0_0_9": "10.0.0.9 AS 65001",
    }
    old = node_facts({"bird.conf": BIRD})
    new = node_facts({"bird.conf": BIRD.replace("passive on;", "passive off;")})
    assert compare_facts(old, new) == ["- BGP peers", "  - changed: `Mesh_10_0_0_2`"]


def test_bird_conf_moving_out_of_bird_is_no_change_of_peers() -> None:
    # bundle version 2 kept it at bird/bird.conf: a diff across the upgrade reads both
    assert (
        compare_facts(node_facts({"bird/bird.conf": BIRD}), node_facts({"bird.conf": BIRD})) == []
    )


def test_routes_facts_from_the_manifest() -> None:
    def manifest(routes: list[dict[str, object]]) -> dict[str, str]:
        return {"node.json": json.dumps({"routes": routes, "link_mtu": 1500, "pod_mtu": 1450})}

    blackhole: dict[str, object] = {"dst": "10.244.0.0/26", "type": "blackhole"}
    via: dict[str, object] = {
        "dst": "10.244.1.0/26",
        "type": "unicast",
        "via": "10.0.0.3",
        "dev": "vxlan.calico",
    }
    old = node_facts(manifest([blackhole]))
    new = node_facts(manifest([blackhole, via]))
    assert compare_facts(old, new) == [
        "- routes",
        "  - added: `10.244.1.0/26` unicast via 10.0.0.3 dev vxlan.calico",
    ]


def test_rendered_trees_need_index_and_nodes() -> None:
    paths = ["a/rendered/index.json", "a/rendered/nodes/n/node.json", "b/index.json", "c/x"]
    assert rendered_trees(paths) == ["a/rendered"]
    assert rendered_trees(paths, prefix="b") == []


def test_blob_ids_match_git(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello\n")
    assert blob_id(b"hello\n") == git(tmp_path, "hash-object", "f").strip()


def test_cli_writes_markdown(repo: Path, tmp_path: Path) -> None:
    add_node_drop_nat_mtu(repo)
    out = tmp_path / "comment.md"
    result = CliRunner().invoke(app, ["diff", "--repo", str(repo), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "| `minikube-m04` | added |" in out.read_text()
    snap = Snapshot(repo, None)
    assert "net/rendered/nodes/minikube-m04/node.json" in snap.paths()
