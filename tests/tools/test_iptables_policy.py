"""Behaviour: the seed policies really isolate and re-open a pod, through the rendered files.

Namespaces: a client, a node (forwarding, calicc's ipsets and iptables) and a pod wired like
the CNI plugin does (host veth cali..., proxy ARP, /32 route; pod default via 169.254.1.1).
The endpoint chains are programmed from contract/endpoint.py, as the CNI plugin will.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.targets.iptables import jump_rules, policy_bindings
from calicc.contract.endpoint import (
    add_restore,
    del_restore,
    endpoint_rules,
    policies_for_pod,
    with_endpoints,
)
from calicc.contract.names import IPTABLES_FILE
from calicc.lab.netns import ns_ping, ns_run, veth_between
from tests.conftest import EXAMPLES, need_tool
from tests.tools.treekit import role_text

pytestmark = [pytest.mark.root, pytest.mark.tools]
IFACE = "cali0123456789a"
POD_IP = "10.244.0.5"
SEED = EXAMPLES / "policies-demo" / "policies" / "seed.yaml"


def wire(make_ns: Callable[[str], str]) -> tuple[str, str]:
    client, node, pod = make_ns("cl"), make_ns("nd"), make_ns("pod")
    veth_between(node, "ext0", client, "up0")
    veth_between(node, IFACE, pod, "eth0")
    for ns, cmd in [
        (client, "ip addr add 10.99.0.2/24 dev up0"),
        (client, "ip route add 10.244.0.0/16 via 10.99.0.1"),
        (node, "ip addr add 10.99.0.1/24 dev ext0"),
        (node, "ip route add default via 10.99.0.2"),
        (node, "sysctl -qw net.ipv4.ip_forward=1"),
        (node, f"sysctl -qw net.ipv4.conf.{IFACE}.proxy_arp=1"),
        (node, f"ip route add {POD_IP}/32 dev {IFACE}"),
        (pod, f"ip addr add {POD_IP}/32 dev eth0"),
        (pod, "ip route add 169.254.1.1 dev eth0 scope link"),
        (pod, "ip route add default via 169.254.1.1 dev eth0"),
    ]:
        ns_run(ns, shlex.split(cmd))
    return client, node


def reachable(client: str) -> bool:
    return ns_ping(client, POD_IP)


def plan_with(tmp_path: Path, seed_text: str) -> tuple[ClusterPlan, dict[str, str]]:
    copy = tmp_path / "demo"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(EXAMPLES / "policies-demo", copy, ignore=shutil.ignore_patterns("rendered"))
    (copy / "policies" / "seed.yaml").write_text(seed_text)
    compiled = compile_cluster(load_cluster(copy / "cluster.yaml"))
    return compiled.plan, compiled.files


def apply(node: str, plan: ClusterPlan, files: dict[str, str], namespace: str) -> None:
    """Apply node-1's files as the agent would, with the pod's endpoint merged in."""
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    pod = policies_for_pod(policy_bindings(plan), namespace, {"app": "x"}, {})
    rules = with_endpoints(role_text(files, "node-1", IPTABLES_FILE), [endpoint_rules(IFACE, pod)])
    ns_run(node, ["iptables-restore", "--noflush"], input_text=rules)


def hook(node: str, plan: ClusterPlan) -> None:
    for jump in jump_rules():
        where = ["-I", jump.chain, "1"] if jump.position == "top" else ["-A", jump.chain]
        ns_run(node, ["iptables", "-t", jump.table, *where, *shlex.split(jump.rule)])


def test_default_deny_isolates_and_allow_all_restores(
    make_ns: Callable[[str], str], tmp_path: Path
) -> None:
    need_tool("ping", "ipset", "iptables-restore")
    client, node = wire(make_ns)
    deny_only = SEED.read_text().split("---")[0]
    plan, files = plan_with(tmp_path, deny_only)
    apply(node, plan, files, namespace="default")
    hook(node, plan)
    assert reachable(client), "a pod no policy selects is open"
    apply(node, plan, files, namespace="demo")
    assert not reachable(client), "default-deny-ingress must isolate the pod"
    plan, files = plan_with(tmp_path, SEED.read_text())
    apply(node, plan, files, namespace="demo")
    assert reachable(client), "allow-all-ingress must restore traffic"


def test_cni_add_and_del_fragments(make_ns: Callable[[str], str], tmp_path: Path) -> None:
    need_tool("ping", "ipset", "iptables-restore", "iptables-save")
    client, node = wire(make_ns)
    plan, files = plan_with(tmp_path, SEED.read_text())
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    ns_run(
        node,
        ["iptables-restore", "--noflush"],
        input_text=role_text(files, "node-1", IPTABLES_FILE),
    )
    hook(node, plan)
    assert not reachable(client), "an interface without endpoint chains is dropped"
    endpoint = endpoint_rules(IFACE, policies_for_pod(policy_bindings(plan), "demo", {}, {}))
    for _ in range(2):
        live = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
        ns_run(node, ["iptables-restore", "--noflush"], input_text=add_restore(endpoint, live))
    live = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
    assert live.count(f"-A cali-from-wl-dispatch -i {IFACE} -g cali-fw-{IFACE}") == 1
    assert reachable(client)
    removal = del_restore(IFACE, live)
    assert removal is not None
    ns_run(node, ["iptables-restore", "--noflush"], input_text=removal)
    live = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
    assert IFACE not in live
    assert del_restore(IFACE, live) is None
    assert not reachable(client)
