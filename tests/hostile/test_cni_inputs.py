"""Hostile and sloppy CNI inputs (issue 9): the CNI_* environment and stdin of the calicc plugin.

Each case runs the plugin as a runtime would, in a node namespace with a real pod namespace
and an IPAM state holding another pod, under a 256 MB address-space limit, and asserts the CNI
code, a message naming the variable (or netconf field, or stdin), no traceback, no long value
echoed, and that the node root (IPAM state, endpoint records) and the links, addresses and
routes of both namespaces are exactly as before. Validation runs before any side effect, so a
case that got further would leave an allocation or a veth behind and fail here.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import LAUNCHER_PYTHON, install_plugins
from calicc.lab.netns import ns_run
from tests.support.cni import cni_server
from tests.support.cni_inputs import (
    Node,
    assert_cni_error,
    assert_refused_cleanly,
    make_node,
    merged,
)
from tests.support.hostile import assert_unchanged

pytestmark = [pytest.mark.root]
LONG = "a" * 100_000
ECHO = "a" * 100  # a message quoting more than this of LONG did not cut it


@dataclass(frozen=True)
class Case:
    """One hostile invocation: variables and netconf changes (None removes), or raw stdin."""

    code: int
    names: tuple[str, ...]
    env: Mapping[str, str | bytes | None] = field(default_factory=dict)
    conf: Mapping[str, Any] = field(default_factory=dict)
    stdin: bytes | None = None
    command: str = "ADD"
    never: tuple[str, ...] = ()


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


ENV_CASES = {
    "containerid-path-traversal": Case(4, ("CNI_CONTAINERID",), {"CNI_CONTAINERID": "../../etc/x"}),
    "containerid-newline": Case(4, ("CNI_CONTAINERID",), {"CNI_CONTAINERID": "c0ffee\nrm"}),
    "containerid-leading-dot": Case(4, ("CNI_CONTAINERID",), {"CNI_CONTAINERID": ".hidden"}),
    "containerid-very-long": Case(
        4, ("CNI_CONTAINERID", "100000 characters"), {"CNI_CONTAINERID": LONG}, never=(ECHO,)
    ),
    "containerid-not-utf8": Case(4, ("CNI_CONTAINERID",), {"CNI_CONTAINERID": b"c0\xff\xfe"}),
    "containerid-missing": Case(4, ("CNI_CONTAINERID is not set",), {"CNI_CONTAINERID": None}),
    "containerid-missing-del": Case(
        4, ("CNI_CONTAINERID is not set",), {"CNI_CONTAINERID": ""}, command="DEL"
    ),
    "ifname-16-bytes": Case(4, ("CNI_IFNAME", "15 bytes"), {"CNI_IFNAME": "eth0123456789abc"}),
    "ifname-multibyte-too-long": Case(4, ("CNI_IFNAME", "15 bytes"), {"CNI_IFNAME": "é" * 8}),
    "ifname-slash": Case(4, ("CNI_IFNAME", "'/'"), {"CNI_IFNAME": "../eth0"}),
    "ifname-dotdot": Case(4, ("CNI_IFNAME", ". or .."), {"CNI_IFNAME": ".."}),
    "ifname-colon": Case(4, ("CNI_IFNAME",), {"CNI_IFNAME": "eth0:1"}),
    "ifname-space": Case(4, ("CNI_IFNAME",), {"CNI_IFNAME": "eth 0"}),
    "ifname-very-long-del": Case(
        4, ("CNI_IFNAME",), {"CNI_IFNAME": LONG}, command="DEL", never=(ECHO,)
    ),
    "ifname-missing-check": Case(
        4, ("CNI_IFNAME is not set",), {"CNI_IFNAME": None}, command="CHECK"
    ),
    "netns-missing": Case(4, ("CNI_NETNS is not set",), {"CNI_NETNS": None}),
    "netns-relative": Case(4, ("CNI_NETNS", "absolute"), {"CNI_NETNS": "run/netns/x"}),
    "netns-does-not-exist": Case(3, ("CNI_NETNS",), {"CNI_NETNS": "/var/run/netns/nowhere"}),
    "netns-is-a-directory": Case(3, ("CNI_NETNS",), {"CNI_NETNS": "/proc"}),
    "command-garbage": Case(4, ("CNI_COMMAND",), {"CNI_COMMAND": "ADD;" + LONG}, never=(ECHO,)),
    "args-pod-name-traversal": Case(
        4, ("K8S_POD_NAME",), {"CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=../../x"}
    ),
    "args-namespace-uppercase": Case(
        4, ("K8S_POD_NAMESPACE",), {"CNI_ARGS": "K8S_POD_NAMESPACE=Default;K8S_POD_NAME=web-0"}
    ),
    "args-namespace-newline": Case(
        4, ("K8S_POD_NAMESPACE",), {"CNI_ARGS": "K8S_POD_NAMESPACE=a\nb;K8S_POD_NAME=web-0"}
    ),
    "args-item-without-value": Case(4, ("CNI_ARGS", "KEY=VALUE"), {"CNI_ARGS": "garbage"}),
    "args-too-long": Case(4, ("CNI_ARGS", "4096"), {"CNI_ARGS": "X=" + LONG}, never=(ECHO,)),
    "args-infra-container-id": Case(
        4, ("K8S_POD_INFRA_CONTAINER_ID",), {"CNI_ARGS": "K8S_POD_INFRA_CONTAINER_ID=/etc"}
    ),
}

STDIN_CASES = {
    "stdin-not-json": Case(6, ("stdin", "not JSON"), stdin=b"{not json"),
    "stdin-not-utf8": Case(6, ("stdin",), stdin=b'{"cniVersion": "\xff\xfe"}'),
    "stdin-empty": Case(7, ("cniVersion",), stdin=b""),
    "stdin-array": Case(6, ("stdin", "JSON object"), stdin=b"[1, 2]"),
    "stdin-8-mib": Case(6, ("stdin", "1048576 bytes"), stdin=b'{"a": "' + b"x" * (8 << 20) + b'"}'),
    "stdin-recursion-bomb": Case(6, ("stdin", "nests too deeply"), stdin=deep(100_000)),
    "stdin-40-levels": Case(6, ("stdin", "32 levels"), stdin=deep(40)),
    "stdin-huge-integer": Case(6, ("stdin",), stdin=b'{"mtu": ' + b"9" * 5000 + b"}"),
}

CONF_CASES = {
    "mtu-string": Case(7, ("netconf mtu",), conf={"mtu": "1480"}),
    "mtu-bool": Case(7, ("netconf mtu",), conf={"mtu": True}),
    "mtu-out-of-range": Case(7, ("netconf mtu",), conf={"mtu": 10**12}),
    "name-traversal": Case(7, ("netconf name",), conf={"name": "../net"}),
    "name-missing": Case(7, ("'name'",), conf={"name": None}),
    "type-not-string": Case(7, ("netconf type",), conf={"type": ["calicc"]}),
    "cniversion-unknown": Case(1, ("cniVersion", "9.9.9"), conf={"cniVersion": "9.9.9"}),
    "cniversion-huge": Case(7, ("netconf cniVersion",), conf={"cniVersion": LONG}, never=(ECHO,)),
    "cniversion-number": Case(7, ("netconf cniVersion",), conf={"cniVersion": 1.0}),
    "state-dir-number": Case(7, ("netconf state_dir",), conf={"state_dir": 5}),
    "state-dir-traversal": Case(7, ("netconf state_dir", ".."), conf={"state_dir": "../../etc"}),
    "bundle-nul": Case(7, ("netconf bundle",), conf={"bundle": "/etc/x\u0000y"}),
    "root-relative": Case(7, ("netconf root", "absolute"), conf={"root": "tmp/root"}),
    "ipam-string": Case(7, ("netconf ipam",), conf={"ipam": "calicc-ipam"}),
    "ipam-state-dir-list": Case(7, ("ipam.state_dir",), conf={"ipam": {"state_dir": ["/x"]}}),
    "labels-list": Case(7, ("runtimeConfig.labels",), conf={"runtimeConfig": {"labels": ["a"]}}),
    "labels-number-value": Case(
        7, ("runtimeConfig.namespaceLabels",), conf={"runtimeConfig": {"namespaceLabels": {"a": 1}}}
    ),
    "kubeconfig-object-with-secret": Case(
        7,
        ("kubernetes.kubeconfig",),
        conf={"kubernetes": {"kubeconfig": {"token": "s3cr3t-token-value"}}},
        never=("s3cr3t",),
    ),
    "check-prevresult-garbage": Case(
        7, ("prevResult",), conf={"prevResult": "garbage"}, command="CHECK"
    ),
    "check-prevresult-bad-address": Case(
        7,
        ("prevResult.ips[0].address",),
        conf={"prevResult": {"ips": [{"address": "300.1.2.3/32"}]}},
        command="CHECK",
    ),
    "check-prevresult-missing": Case(7, ("prevResult",), command="CHECK"),
    "gc-attachment-traversal": Case(
        7,
        ("valid-attachments[0].containerID",),
        conf={"cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"containerID": "../x"}]},
        command="GC",
    ),
    "gc-attachments-not-list": Case(
        7,
        ("cni.dev/valid-attachments",),
        conf={"cniVersion": "1.1.0", "cni.dev/valid-attachments": {"containerID": "x"}},
        command="GC",
    ),
}

CASES = {**ENV_CASES, **STDIN_CASES, **CONF_CASES}


@pytest.fixture
def node(make_ns: Callable[[str], str], tmp_path: Path) -> Node:
    return make_node(make_ns, tmp_path)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_input_is_refused_cleanly(node: Node, case: Case) -> None:
    env = node.env(case.command, **case.env)
    stdin = case.stdin if case.stdin is not None else json.dumps(merged(node.conf, case.conf))
    data = stdin if isinstance(stdin, bytes) else stdin.encode()
    assert_refused_cleanly(node, env, data, case.code, names=case.names, never=case.never)


# node.json facts of the wrong family (docs/ipv6.md): refused as the bundle's, naming the field
BUNDLE_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "tunnel-address-ipv6": (
        {"tunnel_address": "fd00:10:244::1"},
        ("tunnel_address: 'fd00:10:244::1' is not an IPv4 address",),
    ),
    "tunnel-address-v6-ipv4": (
        {"tunnel_address_v6": "10.244.0.9"},
        ("tunnel_address_v6: '10.244.0.9' is not an IPv6 address",),
    ),
    "block-ipv6-whole-prefix": (
        {"blocks": [{"cidr": "fd00:10:244::/64", "pool": "default-ipv4-ippool"}]},
        ("blocks[0].cidr: fd00:10:244::/64 is larger than a block (IPv6 blocks are /116",),
    ),
    "block-host-bits": (
        {"blocks": [{"cidr": "fd00:10:244::1/122", "pool": "default-ipv4-ippool"}]},
        ("blocks[0].cidr: 'fd00:10:244::1/122' is not an IP network",),
    ),
}


@pytest.mark.parametrize(("changes", "names"), BUNDLE_CASES.values(), ids=BUNDLE_CASES.keys())
def test_a_bundle_fact_of_the_wrong_family_is_refused_cleanly(
    node: Node, changes: dict[str, Any], names: tuple[str, ...]
) -> None:
    path = node.root / "etc/calicc/bundle/node.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    conf = json.dumps(node.conf).encode()
    assert_refused_cleanly(node, node.env(), conf, 7, names=("node.json", *names))


def test_netns_that_is_a_plain_file_or_a_fifo(node: Node, tmp_path: Path) -> None:
    plain, fifo = tmp_path / "netns-file", tmp_path / "netns-fifo"
    plain.write_text("")
    os.mkfifo(fifo)  # opening it for reading would block: the plugin must not try
    conf = json.dumps(node.conf).encode()
    for path in (plain, fifo):
        env = node.env(CNI_NETNS=str(path))
        assert_refused_cleanly(node, env, conf, 3, names=("CNI_NETNS",))


def test_a_valid_add_still_works_and_del_undoes_it(node: Node) -> None:
    """The control case: the same node accepts a well-formed pod, so the refusals above are
    refusals of their one bad value."""
    conf = json.dumps(node.conf).encode()
    added = node.run(node.env(), conf)
    assert added.code == 0, added.stdout + added.stderr
    assert json.loads(added.stdout)["ips"][0]["address"] == "10.244.0.2/32"
    gone = node.run(node.env("DEL"), conf)
    assert gone.code == 0, gone.stdout + gone.stderr


def test_add_failing_in_veth_creation_takes_back_its_address(node: Node) -> None:
    """The pod already has an eth0: creating the pair fails after IPAM handed out an address.
    The address (and IPAM's cursor) go back, and the pod's own eth0 is not touched."""
    ns_run(node.pod_ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0"])
    conf = json.dumps(node.conf).encode()
    error = assert_refused_cleanly(node, node.env(), conf, 101, names=("eth0", "File exists"))
    assert "rollback" not in error.get("details", "")


def test_add_failing_after_the_veth_takes_back_everything(node: Node) -> None:
    """No iptables-save on PATH: endpoint policy fails after the veth, its routes and the
    endpoint record exist. All of them go, and the address returns to IPAM."""
    conf = json.dumps(node.conf).encode()
    before = node.state()
    outcome = node.run(node.env(), conf, path="/nonexistent")
    error = assert_cni_error(outcome, 103, ("iptables-save",))
    assert "rollback: " in error["details"]  # the record's policy could not be read back either
    after = node.state()
    assert_unchanged(before[0], after[0])
    assert before[1:] == after[1:], "links, addresses or routes changed"


@pytest.fixture(params=[False, True], ids=["python-launcher", "native-launcher"])
def served(request: pytest.FixtureRequest, node: Node) -> Iterator[Node]:
    """The node with its launchers installed and the agent's socket server running in it;
    the launchers' standalone fallback points nowhere, so the agent must answer."""
    if not Path(LAUNCHER_PYTHON).exists():
        pytest.skip(f"the Python launcher needs {LAUNCHER_PYTHON}")
    if request.param and shutil.which("cc") is None:
        pytest.skip("no C compiler for the native launcher")
    install_plugins(node.root, "/nonexistent/python", native=request.param)
    with cni_server(node.ns, node.root):
        yield node


def test_hostile_input_through_the_launchers_and_the_agent_socket(served: Node) -> None:
    """The wire to the agent cannot be used to smuggle a variable in or to flood it."""
    launcher = [str(served.root / "opt/cni/bin/calicc")]
    conf = json.dumps(served.conf).encode()
    smuggled = served.env(CNI_CONTAINERID="c0ffee\nCNI_IFNAME=eth1")
    flood = b'{"a": "' + b"x" * (8 << 20) + b'"}'
    for env, stdin, code, name in (
        (smuggled, conf, 4, "CNI_CONTAINERID"),
        (served.env(CNI_IFNAME=LONG), conf, 4, "CNI_IFNAME"),
        (served.env(CNI_ARGS="K8S_POD_NAME=a\\b"), conf, 4, "K8S_POD_NAME"),
        (served.env(), flood, 6, "1048576 bytes"),
        (served.env(), deep(100_000), 6, "nests too deeply"),
    ):
        before = served.state()
        outcome = served.run(env, stdin, args=launcher)
        assert_cni_error(outcome, code, (name,), never=(ECHO,))
        after = served.state()
        assert_unchanged(before[0], after[0])
        assert before[1:] == after[1:], "links, addresses or routes changed"


@pytest.mark.parametrize(
    "kubeconfig",
    [
        "users:\n- name: u\n  user: {token: s3cr3t-token-value\n",  # unclosed flow mapping
        "users: [s3cr3t-token-value]\ncontexts: 7\n",  # the wrong shapes
        "- s3cr3t-token-value\n",
    ],
    ids=["broken-yaml", "wrong-shapes", "not-a-mapping"],
)
def test_sloppy_kubeconfig_never_echoes_its_token(node: Node, kubeconfig: str) -> None:
    """Read after the veth exists: the ADD fails with 104 and takes everything back."""
    (node.root / "etc/kubeconfig").write_text(kubeconfig)
    conf = json.dumps({**node.conf, "kubernetes": {"kubeconfig": "/etc/kubeconfig"}}).encode()
    assert_refused_cleanly(node, node.env(), conf, 104, names=("kubeconfig",), never=("s3cr3t",))
