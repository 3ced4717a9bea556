"""Hostile and sloppy inputs to `calicc build` and `calicc validate`: cluster files, policy
files and ICP files. Each case: exit 1, a message at file:line(:column) naming the field, no
traceback, no secret echoed, no line longer than the harness allows, nothing written, all
under the harness's memory limit.

Classes of issue 9 covered here: "reaches the node" (names and free text validated, full
matches), "writes where it must not" (validate and policy paths), "crashes or exhausts memory"
(bombs, duplicate keys, bad bytes, huge values, template expressions, secrets in errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.support.hostile import assert_clean_error, assert_unchanged, run_calicc, snapshot

HEAD = "name: t\nnetwork_cidr: 10.244.0.0/16\nnodes:\n  - name: n1\n    address: 10.0.0.1/24\n"
NODE_LINE = 6  # the first line a case appends to HEAD (inside nodes[0])


def bomb(levels: int = 9) -> str:
    rows = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    rows += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Case:
    """One input tree, the command, and what its refusal must say."""

    id: str
    files: dict[str, str | bytes]
    where: str | None
    field: str | None = None
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    command: tuple[str, ...] = ("build", "cluster.yaml")
    needs: tuple[str, ...] = ()


def node(extra: str, *, where: str | None = None, **kw: object) -> dict[str, object]:
    return {"files": {"cluster.yaml": HEAD + extra}, "where": where, **kw}


CASES = [
    # --- strings that reach a node's files ---
    Case(
        "interface-shell-injection",
        **node("    interface: 'e0\";id;\"'\n", where="cluster.yaml:6:5"),
        field="nodes[0].interface",
        says=("is not an interface name",),
    ),
    Case("interface-16-chars", **node("    interface: abcdefghijklmnop\n", where=":6:5")),
    Case("interface-slash", **node("    interface: eth0/1\n", where=":6:5"), field="interface"),
    Case("interface-dotdot", **node("    interface: '..'\n", where=":6:5"), field="interface"),
    Case("interface-space", **node("    interface: 'eth 0'\n", where=":6:5"), field="interface"),
    Case("interface-colon", **node("    interface: 'eth0:1'\n", where=":6:5"), field="interface"),
    Case("interface-newline", **node('    interface: "eth0\\n"\n', where=":6:5")),
    Case("interface-empty", **node("    interface: ''\n", where=":6:5"), field="interface"),
    Case(
        "node-name-trailing-newline",
        {"cluster.yaml": HEAD.replace("name: n1", 'name: "n1\\n"')},
        ":4:5",
        "nodes[0].name",
        ("DNS-1123",),
    ),
    Case("node-name-upper", {"cluster.yaml": HEAD.replace("n1", "N1")}, ":4:5", "nodes[0].name"),
    Case("node-name-dotdot", {"cluster.yaml": HEAD.replace("n1", "'..'")}, ":4:5", "name"),
    Case("node-name-traversal", {"cluster.yaml": HEAD.replace("n1", "'../x'")}, ":4:5", "name"),
    Case("node-name-slash", {"cluster.yaml": HEAD.replace("n1", "a/b")}, ":4:5", "name"),
    Case("node-name-254", {"cluster.yaml": HEAD.replace("n1", "a" * 254)}, ":4:5", "name"),
    Case(
        "node-name-binary-tag",
        {"cluster.yaml": HEAD.replace("name: n1", "name: !!binary bjFcbg==")},
        ":4:5",
        "name",
    ),
    Case("label-key-space", **node("    labels: {'a b': c}\n", where=":6:"), field="labels"),
    Case("label-key-quote", **node("    labels: {'a\"b': c}\n", where=":6:"), field="labels"),
    Case("label-value-newline", **node('    labels: {a: "b\\nc"}\n', where=":6:"), field="a"),
    Case("label-value-64", **node(f"    labels: {{a: {'b' * 64}}}\n", where=":6:")),
    Case("label-prefix-bad", **node("    labels: {'Ex.com/a': b}\n", where=":6:")),
    Case("cluster-name-newline", {"cluster.yaml": HEAD.replace("name: t", 'name: "t\\n"')}, ":1:"),
    Case(
        "pool-name-newline",
        {"cluster.yaml": HEAD + 'pools:\n  - {name: "p\\n", cidr: 10.245.0.0/16}\n'},
        ":7:",
        "pools[0].name",
    ),
    Case(
        "rr-cluster-id-newline",
        **node('    route_reflector_cluster_id: "1.0.0.1\\n"\n', where=":6:5"),
        field="route_reflector_cluster_id",
    ),
    Case(
        "autodetect-bad-regex",
        {"cluster.yaml": HEAD + "ip_autodetection_method: interface=(eth\n"},
        ":6:",
        "ip_autodetection_method",
        ("not a regular expression",),
    ),
    Case(
        "autodetect-newline",
        {"cluster.yaml": HEAD + 'ip_autodetection_method: "can-reach=x\\nid"\n'},
        ":6:",
        "ip_autodetection_method",
    ),
    Case(
        "autodetect-quote",
        {"cluster.yaml": HEAD + "ip_autodetection_method: interface=eth'0\n"},
        ":6:",
        "ip_autodetection_method",
    ),
    Case(
        "autodetect-bad-cidr",
        {"cluster.yaml": HEAD + "ip_autodetection_method: cidr=10.0.0.0/33\n"},
        ":6:",
        "ip_autodetection_method",
    ),
    Case(
        "autodetect-unknown",
        {"cluster.yaml": HEAD + "ip_autodetection_method: first-found=1\n"},
        ":6:",
        "ip_autodetection_method",
        ("valid: first-found",),
    ),
    # --- secrets are referenced, never written, never echoed ---
    Case(
        "mesh-password-inline",
        {"cluster.yaml": HEAD + "bgp:\n  mesh_password: hunter2-secret\n"},
        ":7:3",
        "bgp.mesh_password",
        never=("hunter2",),
    ),
    Case(
        "peer-password-inline",
        {
            "cluster.yaml": HEAD + "bgp:\n  peers:\n    - peer_ip: 10.0.0.9\n"
            "      as_number: 65000\n      password: s3cr3t-value\n"
        },
        ":10:7",
        "bgp.peers[0].password",
        never=("s3cr3t",),
    ),
    Case(
        "password-extra-key",
        {"cluster.yaml": HEAD + "bgp:\n  mesh_password: {env: PW, value: hunter2-x}\n"},
        ":7:",
        "bgp.mesh_password.value",
        never=("hunter2",),
    ),
    Case(
        "password-env-injection",
        {"cluster.yaml": HEAD + 'bgp:\n  mesh_password: {env: "PW; id"}\n'},
        ":7:",
        "bgp.mesh_password.env",
        never=("PW; id",),
    ),
    Case(
        "password-file-relative",
        {"cluster.yaml": HEAD + "bgp:\n  mesh_password: {file: ../pw}\n"},
        ":7:",
        "bgp.mesh_password.file",
    ),
    # --- YAML that would crash or exhaust memory ---
    Case("duplicate-key", {"cluster.yaml": HEAD + "name: u\n"}, ":6:1", None, ("duplicate key",)),
    Case(
        "duplicate-key-nested",
        **node("    address: 10.0.0.2/24\n", where=":6:5"),
        says=("duplicate key 'address' (first at line 5)",),
    ),
    Case("alias-bomb", {"cluster.yaml": HEAD + bomb()}, "cluster.yaml:", None, ("aliases",)),
    Case("alias-recursive", {"cluster.yaml": HEAD + "x: &r [*r]\n"}, ":6:", None, ("alias",)),
    Case("deep-nesting", {"cluster.yaml": HEAD + "x: " + "[" * 5000 + "]" * 5000 + "\n"}, ":6:"),
    Case(
        "not-utf8",
        {"cluster.yaml": HEAD.encode() + b"    interface: eth\xff0\n"},
        "cluster.yaml:6:19",
        None,
        ("not UTF-8",),
    ),
    Case(
        "utf16",
        {"cluster.yaml": HEAD.encode("utf-16")},
        "cluster.yaml:1:1",
        None,
        ("not UTF-8",),
    ),
    Case(
        "huge-scalar-cut",
        {"cluster.yaml": HEAD.replace("name: n1", "name: " + "x" * 5_000_000)},
        ":4:5",
        "nodes[0].name",
        ("(5000000 characters)",),
    ),
    Case(
        "file-too-large",
        {"cluster.yaml": HEAD + "# " + "x" * (9 * 2**20) + "\n"},
        "cluster.yaml",
        None,
        ("larger than 8 MiB",),
    ),
    Case(
        "too-many-values",
        {"cluster.yaml": HEAD + "x: [" + "1," * 330_000 + "1]\n"},
        "cluster.yaml:6:",
        None,
        ("more than 320000 values",),
    ),
    Case("syntax-error", {"cluster.yaml": HEAD + "x: [1, 2\n"}, ":7:", None, ("YAML syntax",)),
    Case(
        "python-tag",
        {"cluster.yaml": HEAD + "x: !!python/object/apply:os.system [id]\n"},
        ":6:",
        None,
        ("YAML",),
    ),
    Case("top-level-list", {"cluster.yaml": "- a\n- b\n"}, "cluster.yaml:1:1", None, ("mapping",)),
    Case("empty-file", {"cluster.yaml": ""}, "cluster.yaml", None, ("mapping",)),
    Case("no-nodes", {"cluster.yaml": "name: t\nnetwork_cidr: 10.0.0.0/8\nnodes: []\n"}, ":3:"),
    Case("unknown-key", **node("    max_pod: 3\n", where=":6:5"), says=("did you mean",)),
    Case("as-number-range", **node("    as_number: 4294967296\n", where=":6:5")),
    Case("bad-address", {"cluster.yaml": HEAD.replace("10.0.0.1/24", "10.0.0.300/24")}, ":5:"),
    Case("bool-for-name", {"cluster.yaml": HEAD.replace("name: t", "name: yes")}, ":1:"),
    Case("missing-file", {}, "cluster.yaml", None, ("cannot read",)),
    Case("max-pods-negative", **node("    max_pods: -1\n", where=":6:5"), field="max_pods"),
    Case("link-mtu-huge", **node("    link_mtu: 100000\n", where=":6:5"), field="link_mtu"),
    Case("block-size-33", {"cluster.yaml": HEAD + "block_size: 33\n"}, ":6:1", "block_size"),
    Case("service-range-bad", {"cluster.yaml": HEAD + "service_cluster_ip_range: x\n"}, ":6:"),
    Case(
        "selector-injection",
        {
            "cluster.yaml": HEAD
            + "pools:\n  - {name: p, cidr: 10.245.0.0/16, node_selector: \"a == 'b\\n'\"}\n"
        },
        ":7:",
    ),
    # --- BIRD snippets ---
    Case(
        "snippet-include-absolute",
        {"cluster.yaml": HEAD + 'bird_snippets:\n  top: include "/etc/shadow";\n'},
        ":7:",
        "bird_snippets.top",
        ("may not include files",),
    ),
    Case(
        "snippet-include-dotdot",
        {"cluster.yaml": HEAD + 'bird_snippets:\n  bottom: |\n    include "../x.conf";\n'},
        ":7:",
        "bird_snippets.bottom",
    ),
    Case(
        "snippet-include-validate",
        {"cluster.yaml": HEAD + 'bird_snippets:\n  top: include "/tmp/calicc-hostile.conf";\n'},
        ":7:",
        "bird_snippets.top",
        command=("validate", "cluster.yaml"),
    ),
    Case(
        "snippet-control-char",
        {"cluster.yaml": HEAD + 'bird_snippets:\n  top: "log stderr all;\\x1b[2J"\n'},
        ":7:",
        "bird_snippets.top",
    ),
    Case(
        "snippet-breaks-bird",
        {
            "cluster.yaml": HEAD + "bird_snippets:\n  bottom: |\n    protocol static extra {\n"
            "      ipv4;\n      route 10.9.0.0/16 banana;\n    }\n"
        },
        "cluster.yaml:10",
        "bird_snippets.bottom",
        ("BIRD rejects this snippet (line 3 of it)",),
        needs=("bird",),
    ),
    Case(
        "snippet-breaks-bird-validate",
        {
            "cluster.yaml": HEAD + "    bird_snippets:\n      filters: |\n"
            "        filter broken { accept }\n"
        },
        "cluster.yaml:8",
        "nodes[0].bird_snippets.filters",
        ("BIRD rejects this snippet",),
        command=("validate", "cluster.yaml"),
        needs=("bird",),
    ),
]

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: p1
spec:
  podSelector: {}
"""
WITH_POLICIES = HEAD + "policies: [policies/*.yaml]\n"

CASES += [
    Case(
        "policy-path-absolute",
        {"cluster.yaml": HEAD + "policies: [/etc/passwd]\n"},
        ":6:",
        "policies[0]",
        ("inside the cluster file's directory",),
    ),
    Case(
        "policy-path-dotdot",
        {"cluster.yaml": HEAD + "policies: [../secrets.yaml]\n"},
        ":6:",
        "policies[0]",
    ),
    Case("policy-path-empty", {"cluster.yaml": HEAD + "policies: ['']\n"}, ":6:", "policies[0]"),
    Case(
        "policy-no-match",
        {"cluster.yaml": HEAD + "policies: [nothere/*.yaml]\n"},
        ":6:",
        "policies[0]",
        ("matches no file",),
    ),
    Case(
        "policy-name-newline",
        {"cluster.yaml": WITH_POLICIES, "policies/p.yaml": POLICY.replace("p1", '"p1\\n"')},
        "p.yaml:4:",
        "metadata.name",
    ),
    Case(
        "policy-namespace-bad",
        {"cluster.yaml": WITH_POLICIES, "policies/p.yaml": POLICY + "  namespace: A_B\n"},
        "p.yaml:",
    ),
    Case(
        "policy-selector-key-injection",
        {
            "cluster.yaml": WITH_POLICIES,
            "policies/p.yaml": POLICY.replace("{}", "{matchLabels: {'a\"; id': b}}"),
        },
        "p.yaml:6:",
        "spec.podSelector.matchLabels",
    ),
    Case(
        "policy-port-name-newline",
        {
            "cluster.yaml": WITH_POLICIES,
            "policies/p.yaml": POLICY + '  ingress:\n    - ports: [{port: "http\\n"}]\n',
        },
        "p.yaml:8:",
        "spec.ingress[0].ports[0].port",
    ),
    Case(
        "policy-not-utf8",
        {"cluster.yaml": WITH_POLICIES, "policies/p.yaml": POLICY.encode() + b"# \xc3\x28\n"},
        "p.yaml:7:3",
        None,
        ("not UTF-8",),
    ),
    Case(
        "policy-duplicate-key",
        {"cluster.yaml": WITH_POLICIES, "policies/p.yaml": POLICY + "kind: Other\n"},
        "p.yaml:7:1",
        None,
        ("duplicate key",),
    ),
    Case(
        "policy-alias-bomb",
        {"cluster.yaml": WITH_POLICIES, "policies/p.yaml": POLICY + bomb()},
        "p.yaml:",
        None,
        ("aliases",),
    ),
    Case(
        "policy-annotation-key-bad",
        {
            "cluster.yaml": WITH_POLICIES,
            "policies/p.yaml": POLICY.replace(
                "  name: p1", "  name: p1\n  annotations: {'a b': x}"
            ),
        },
        "p.yaml:5:",
        "metadata.annotations",
    ),
]

ICP_CONFIG = "cluster_name: icp\nnetwork_cidr: 10.1.0.0/16\nnetwork_type: calico\n"
ICP_HOSTS = "[master]\n10.10.25.70 calicc_prefix=24\n\n[worker]\n10.10.25.71 calicc_prefix=24\n"
ICP = ("build", "--icp", "config.yaml", "--hosts", "hosts")

CASES += [
    Case(
        "icp-template-bomb",
        {
            "config.yaml": ICP_CONFIG + "calico_ip_autodetection_method: \"{{ 'x' * 10**11 }}\"\n",
            "hosts": ICP_HOSTS,
        },
        "config.yaml:4:1",
        "calico_ip_autodetection_method",
        ("only {{ groups['GROUP'][N] }}",),
        command=ICP,
    ),
    Case(
        "icp-template-lookup",
        {
            "config.yaml": ICP_CONFIG
            + "calico_ip_autodetection_method: \"can-reach={{ lookup('pipe', 'id') }}\"\n",
            "hosts": ICP_HOSTS,
        },
        "config.yaml:4:1",
        "calico_ip_autodetection_method",
        command=ICP,
    ),
    Case(
        "icp-group-out-of-range",
        {
            "config.yaml": ICP_CONFIG
            + "calico_ip_autodetection_method: can-reach={{ groups['master'][5] }}\n",
            "hosts": ICP_HOSTS,
        },
        "config.yaml:4:1",
        None,
        ("has no host 5",),
        command=ICP,
    ),
    Case(
        "icp-hosts-not-utf8",
        {"config.yaml": ICP_CONFIG, "hosts": ICP_HOSTS.encode() + b"10.10.25.7\xfe\n"},
        "hosts:6:11",
        None,
        ("not UTF-8",),
        command=ICP,
    ),
    Case(
        "icp-hosts-interface-injection",
        {"config.yaml": ICP_CONFIG, "hosts": ICP_HOSTS + "10.10.25.72 calicc_interface='e0;id'\n"},
        "hosts:6",
        "interface",
        command=ICP,
    ),
    Case(
        "icp-hosts-unclosed-quote",
        {"config.yaml": ICP_CONFIG, "hosts": ICP_HOSTS + "10.10.25.72 calicc_name='x\n"},
        "hosts:6",
        None,
        command=ICP,
    ),
    Case(
        "icp-hosts-name-injection",
        {"config.yaml": ICP_CONFIG, "hosts": ICP_HOSTS + "10.10.25.72 calicc_name='../../etc'\n"},
        "hosts:6",
        "name",
        command=ICP,
    ),
    Case(
        "icp-config-duplicate-key",
        {"config.yaml": ICP_CONFIG + "network_cidr: 10.2.0.0/16\n", "hosts": ICP_HOSTS},
        "config.yaml:4:1",
        None,
        ("duplicate key",),
        command=ICP,
    ),
    Case(
        "icp-misspelt-key",
        {"config.yaml": ICP_CONFIG + "calico_ipip_mod: Always\n", "hosts": ICP_HOSTS},
        "config.yaml:4:1",
        None,
        ("did you mean 'calico_ipip_mode'",),
        command=ICP,
    ),
]


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_cleanly_and_nothing_written(case: Case, tmp_path: Path) -> None:
    need_tool(*case.needs)
    work = tmp_path / "repo"
    work.mkdir()
    _write(work, case.files)
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(tmp_path, Path("/tmp/calicc-hostile.conf"))
    outcome = run_calicc(case.command, cwd=work)
    assert_clean_error(
        outcome, where=case.where, field=case.field, says=case.says, never=case.never
    )
    assert_unchanged(before, snapshot(tmp_path, Path("/tmp/calicc-hostile.conf")))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80


def test_symlinked_policy_pointing_outside_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    (work / "policies").mkdir(parents=True)
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    (work / "policies" / "p.yaml").symlink_to(secret)
    (work / "cluster.yaml").write_text(WITH_POLICIES)
    before = snapshot(tmp_path)
    outcome = run_calicc(("build", "cluster.yaml"), cwd=work)
    assert_clean_error(
        outcome, where="cluster.yaml:6:", field="policies[0]", says=("links outside",)
    )
    assert "hunter2" not in outcome.stderr
    assert_unchanged(before, snapshot(tmp_path))
