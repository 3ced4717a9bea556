"""calicc diff's reachability section: intents and pod pairs of policies-demo traced in two
revisions of a tmp git repo; only the answers whose verdict, path or path MTU change listed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from calicc.compiler.build import build, load_cluster
from calicc.compiler.cli import app
from calicc.compiler.diff import diff_command
from calicc.trace import reach_diff
from calicc.trace.reach_table import MAX_ROWS
from tests.conftest import EXAMPLES

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "PATH": "/usr/bin:/bin",
}
SECTION = "#### reachability"
PROM_WEB1 = "| `monitoring/prometheus` | `shop/web-1` | TCP/8080 | allowed → denied"
PROM_WEB2 = "| `monitoring/prometheus` | `shop/web-2` | TCP/8081 | allowed → denied"


def git(repo: Path, *args: str) -> str:
    env = {**GIT_ENV, "HOME": str(repo)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repo holding policies-demo (rendered, with pods and intents), committed once."""
    repo = tmp_path_factory.mktemp("base")
    git(repo, "init", "-q", "-b", "main")
    shutil.copytree(EXAMPLES / "policies-demo", repo / "demo")
    commit(repo, "policies-demo")
    return repo


@pytest.fixture
def repo(committed: Path, tmp_path: Path) -> Path:
    """A copy of the committed repo, for one test to change."""
    shutil.copytree(committed, tmp_path / "repo")
    return tmp_path / "repo"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def rebuild(cluster_dir: Path) -> None:
    """Build as `calicc build` writes (rendered/ beside the file), without the intents check."""
    build(load_cluster(cluster_dir / "cluster.yaml"), cluster_dir / "rendered")


def section(text: str) -> str:
    assert SECTION in text, text
    return text.split(SECTION, 1)[1]


def pair_rows(text: str) -> list[str]:
    """Return the rows of the pod pair table."""
    table = section(text).split("| from | to | port |", 1)
    return [line for line in table[-1].splitlines() if line.startswith("| `")] if table[1:] else []


def close_web_range(repo: Path) -> None:
    """web-allow's 8000-8100 range from monitoring becomes 8082-8100: prometheus loses web."""
    edit(repo / "demo/policies/web.yaml", "port: 8000, endPort", "port: 8082, endPort")
    rebuild(repo / "demo")


def test_a_policy_change_lists_the_pairs_whose_verdict_changed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    close_web_range(repo)
    commit(repo, "close the range")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    text = diff_command(repo, "HEAD~1", "HEAD")
    found = section(text)
    assert "Traced in `HEAD~1` and `HEAD` with `demo/intents.yaml`, `demo/pods.yaml`" in found
    assert "5 intents and 110 pod pairs" in found
    rows = pair_rows(text)
    assert len(rows) == 2, rows
    assert rows[0].startswith(PROM_WEB1)
    assert rows[1].startswith(PROM_WEB2)
    assert "(no policy allows it)" in rows[0]
    assert "| bgp via tunl0 (ipip), over Mesh_10_30_0_11 | 1480 |" in rows[0]
    assert "| local-pod | 1480 |" in rows[1]
    assert "| intent |" not in found  # no intent changes
    assert list(temp.iterdir()) == []  # both revisions' temporary trees removed


def test_a_pods_file_change_alone_is_traced_and_lists_the_tree(repo: Path) -> None:
    edit(repo / "demo/pods.yaml", "labels: {app: api}", "labels: {app: gateway}")
    edit(repo / "demo/pods.yaml", "{app: prometheus, role: scraper}", "{app: prometheus}")
    text = diff_command(repo, "HEAD", None)
    assert "### `demo/rendered`" in text
    assert "No node's own files changed." in text
    found = section(text)
    assert "| `api-reaches-web-dns` | shop/api-1 → shop/web-1 UDP/5353, expect allow |" in found
    assert "allowed → denied" in found
    assert "| holds → violated: expected allow, the trace says denied |" in found
    rows = pair_rows(text)
    assert len(rows) == 2, rows
    assert rows[0].startswith(PROM_WEB1)
    assert rows[1].startswith(PROM_WEB2)


def test_intents_added_and_removed_are_listed(repo: Path) -> None:
    path = repo / "demo/intents.yaml"
    data = yaml.safe_load(path.read_text())
    data["intents"] = [i for i in data["intents"] if i["name"] != "quarantine-is-cut-off"]
    new = {"name": "client-pings-web", "from": "demo/client", "to": "shop/web-2", "expect": "deny"}
    path.write_text(yaml.safe_dump({"intents": [*data["intents"], new]}, sort_keys=False))
    found = section(diff_command(repo, "HEAD", None))
    assert (
        "- intent added: `client-pings-web` (demo/client → shop/web-2 ping, expect deny)" in found
    )
    assert "- intent removed: `quarantine-is-cut-off` (quarantine/suspect → demo/nginx" in found
    assert "was denied" in found
    assert "path MTU 1480, holds" in found
    assert "4 intents and no pod pair (the same tree and pods file in both)" in found
    assert "| from |" not in found  # no pair changed


def test_an_mtu_change_shows_old_and_new_path_mtu(repo: Path) -> None:
    with (repo / "demo/cluster.yaml").open("a") as handle:
        handle.write("mtu: 1400\n")
    edit(repo / "demo/intents.yaml", "min_mtu: 1480", "min_mtu: 1400")
    rebuild(repo / "demo")
    text = diff_command(repo, "HEAD", None)
    found = section(text)
    assert "| `client-reaches-nginx` |" in found
    assert "| allowed | bgp via tunl0 (ipip), over Mesh_10_30_0_11 | 1480 → 1400 |" in found
    rows = pair_rows(text)
    assert len(rows) == MAX_ROWS
    assert all(row.endswith("| 1480 → 1400 |") for row in rows)
    assert "more changed (" in found


def test_an_intent_violated_by_its_own_change_is_listed(repo: Path) -> None:
    edit(repo / "demo/intents.yaml", "min_mtu: 1480", "min_mtu: 1500")
    found = section(diff_command(repo, "HEAD", None))
    assert (
        "| `client-reaches-nginx` | demo/client → demo/nginx TCP/80, expect allow | allowed | "
        "bgp via tunl0 (ipip), over Mesh_10_30_0_11 | 1480 | "
        "holds → violated: expected a path MTU of at least 1500, it is 1480 |"
    ) in found
    assert "no pod pair (the same tree and pods file in both)" in found


def test_the_same_answers_say_so(repo: Path) -> None:
    edit(repo / "demo/pods.yaml", "# The pods", "# The pods (comment edited)")
    found = section(diff_command(repo, "HEAD", None))
    assert "No intent and no pod pair changes verdict, path or path MTU." in found


def test_files_that_do_not_load_are_lines_not_a_crash(repo: Path) -> None:
    edit(repo / "demo/intents.yaml", "from: quarantine/suspect", "from: quarantine/ghost")
    edit(repo / "demo/pods.yaml", "node: node-2\n    labels: {app: suspect}", "node: node-9")
    found = section(diff_command(repo, "HEAD", None))
    assert "- cannot load in `working tree`: demo/pods.yaml:" in found
    assert "node-9" in found
    assert "- cannot trace in `working tree`: intent quarantine-is-cut-off (demo/intents.yaml:" in (
        found
    )
    assert "calicc-diff-" not in found
    assert str(repo) not in found


def test_a_tree_without_pods_or_intents_has_no_section(repo: Path) -> None:
    cluster = repo / "demo/cluster.yaml"
    data = yaml.safe_load(cluster.read_text())
    del data["pods"], data["intents"]
    cluster.write_text(yaml.safe_dump(data, sort_keys=False))
    commit(repo, "no pods, no intents")
    close_web_range(repo)
    commit(repo, "close the range")
    text = diff_command(repo, "HEAD~1", "HEAD")
    assert "### `demo/rendered`" in text
    assert SECTION not in text


def test_a_diff_without_pods_or_intents_loads_no_trace(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    shutil.copytree(EXAMPLES / "minikube-ipip", tmp_path / "net")
    commit(tmp_path, "minikube")
    with (tmp_path / "net/cluster.yaml").open("a") as handle:
        handle.write("mtu: 1400\n")
    rebuild(tmp_path / "net")
    script = (
        "import sys; from pathlib import Path; from calicc.compiler.diff import diff_command; "
        f"text = diff_command(Path({str(tmp_path)!r}), 'HEAD', None); "
        "print('MTU' in text, '#### reachability' in text, "
        "any(m.startswith(('calicc.trace', 'yaml')) for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "False", "False"]


def test_a_dual_stack_pair_is_traced_in_each_family(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    shutil.copytree(EXAMPLES / "dual-stack-mesh", tmp_path / "net")
    (tmp_path / "net/pods.yaml").write_text(
        "pods:\n"
        "  - {name: a, namespace: d, node: node-1, ports: [{name: http, port: 80}]}\n"
        "  - {name: b, namespace: d, node: node-2}\n"
    )
    with (tmp_path / "net/cluster.yaml").open("a") as handle:
        handle.write("pods: pods.yaml\n")
    rebuild(tmp_path / "net")
    commit(tmp_path, "dual stack with pods")
    with (tmp_path / "net/cluster.yaml").open("a") as handle:
        handle.write("mtu: 1400\n")
    rebuild(tmp_path / "net")
    text = diff_command(tmp_path, "HEAD", None)
    assert "with `net/pods.yaml`: 2 pod pairs (6 questions" in section(text)  # no intents counted
    ports = [row.split(" | ")[2] for row in pair_rows(text)]
    assert ports == ["ping", "ping IPv6", "ping", "ping IPv6", "TCP/80", "TCP/80 IPv6"]
    assert "over Mesh_fd00_70__11 | 1500 → 1400 |" in pair_rows(text)[-1]


def test_a_denial_names_the_policy(repo: Path) -> None:
    edit(repo / "demo/pods.yaml", 'quarantine: {quarantine: "true"}', "quarantine: {}")
    commit(repo, "quarantine lifted")
    found = section(diff_command(repo, "HEAD", "HEAD~1"))  # from lifted back to quarantined
    assert (
        "| `quarantine-is-cut-off` | quarantine/suspect → demo/nginx TCP/80, expect deny | "
        "allowed → denied (by Admin ClusterNetworkPolicy cluster-guardrails "
        "(cluster-policies.yaml:" in found
    )


def test_the_cli_writes_the_section_for_a_path(repo: Path, tmp_path: Path) -> None:
    edit(repo / "demo/pods.yaml", "{app: prometheus, role: scraper}", "{app: prometheus}")
    out = tmp_path / "comment.md"
    args = ["diff", "--repo", str(repo / "demo"), "--path", "demo", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pair_rows(out.read_text())[0].startswith(PROM_WEB1)
    result = CliRunner().invoke(app, [*args[:3], "--path", "elsewhere", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "No change to any rendered tree." in out.read_text()


def test_a_tree_in_one_revision_only_is_not_traced(repo: Path) -> None:
    shutil.copytree(repo / "demo", repo / "demo2")
    text = diff_command(repo, "HEAD", None)
    assert "Not traced: the tree is only in `working tree`." in section(text)


def test_bad_names_in_the_cluster_file_are_lines(repo: Path) -> None:
    cluster = repo / "demo/cluster.yaml"
    edit(cluster, "pods: pods.yaml", "pods: ../../outside.yaml")
    edit(cluster, "intents: intents.yaml", "intents: missing.yaml")
    found = section(diff_command(repo, "HEAD", None))
    assert "`pods`: '../../outside.yaml' is outside the repository" in found
    assert "`intents`: demo/missing.yaml does not exist" in found
    assert "intent removed" not in found  # not compared with intents that cannot be read
    cluster.write_text(cluster.read_text() + "pods: [\n")
    found = section(diff_command(repo, "HEAD", None))
    assert "- cannot load in `working tree`: demo/cluster.yaml: " in found
    assert "intent removed" not in found
    assert "| from |" not in found


def test_an_intents_file_that_does_not_validate_is_a_line(repo: Path) -> None:
    edit(repo / "demo/intents.yaml", "expect: deny            # web-allow", "expect: maybe #")
    found = section(diff_command(repo, "HEAD", None))
    assert "- cannot load in `working tree`: demo/intents.yaml:" in found
    assert "expect" in found
    assert "| intent |" not in found  # not compared with a file that does not load


def test_too_many_pod_pairs_trace_only_the_intents(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reach_diff, "MAX_PAIRS", 100)
    close_web_range(repo)
    found = section(diff_command(repo, "HEAD", None))
    assert "- pod pairs not traced: 11 pods make 110 ordered pairs, more than 100" in found
    assert "5 intents and 0 pod pairs" in found
    assert "| from |" not in found
