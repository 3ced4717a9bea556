"""calicc trace through host endpoints (examples/host-protection: failsafes, host policies,
pre-DNAT) and in IPv6 (examples/dual-stack-mesh: ip6tables chains, IPv6 routes)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import yaml
from typer.testing import CliRunner

from calicc.agent.bundle import Bundle
from calicc.contract.names import IP6TABLES_FILE
from calicc.trace import answer
from calicc.trace.answer import Port, Trace, Tracer
from calicc.trace.cli import app
from calicc.trace.ends import Cluster
from calicc.trace.node_read import node_text
from calicc.trace.pods import load_pods
from calicc.trace.policy import NodeTables, node_tables
from calicc.trace.rules import Table, parse_tables
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES


def trace(cluster: Cluster, src: str, dst: str, port: Port, family: int | None = None) -> Trace:
    return Tracer(cluster).trace(cluster.resolve(src, family), cluster.resolve(dst, family), port)


@pytest.fixture(scope="module")
def hosts() -> Cluster:
    return Cluster(TreeView.open(EXAMPLES / "host-protection" / "rendered"), None)


@pytest.mark.parametrize(
    "case",
    [
        ("192.168.100.5", 22, "allowed", "cali-failsafe-in", None),  # failsafe from management
        ("192.0.2.9", 22, "denied", "cali-fh-@all", "host policy management (host.yaml:2)"),
        ("192.0.2.9", 8080, "denied", "cali-hi-", "host policy deny-8080 (host.yaml:24)"),
        ("192.0.2.9", 8100, "allowed", "cali-hi-", "host policy deny-8080 (host.yaml:24)"),
    ],
)
def test_host_endpoint_verdicts(
    hosts: Cluster, case: tuple[str, int, str, str, str | None]
) -> None:
    source, port, outcome, chain, policy = case
    found = trace(hosts, source, "worker-1", Port("tcp", port))
    assert found.outcome == outcome
    check = found.checks[-1]
    assert (check.node, check.hook) == ("worker-1", "filter INPUT")
    decided = check.decided_by
    assert decided is not None
    assert decided.chain.startswith(chain)
    if policy is None:
        assert check.policy is None
    else:
        assert check.policy is not None
        assert policy in check.policy


def test_a_pre_dnat_policy_denies_before_routing(hosts: Cluster) -> None:
    found = trace(hosts, "192.0.2.9", "worker-1", Port("tcp", 30080))
    assert found.outcome == "denied"
    (check,) = found.checks
    assert check.hook == "mangle PREROUTING"
    assert check.policy == "host policy close-nodeports (host.yaml:42)"
    allowed = trace(hosts, "192.168.100.7", "worker-1", Port("tcp", 30080))
    assert allowed.checks[0].hook != "mangle PREROUTING"


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    view = TreeView.open(EXAMPLES / "dual-stack-mesh" / "rendered")
    pods = [
        {"name": "web", "namespace": "shop", "node": "node-1", "labels": {"app": "web"}},
        {"name": "api", "namespace": "shop", "node": "node-2", "labels": {"app": "api"}},
    ]
    path = tmp_path_factory.mktemp("pods") / "pods.yaml"
    path.write_text(yaml.safe_dump({"pods": pods}))
    return Cluster(view, load_pods(path, view.by_name))


def test_an_ipv6_trace_takes_the_ipv6_route_and_ip6tables(dual: Cluster) -> None:
    found = trace(dual, "shop/api", "shop/web", Port("tcp", 80), family=6)
    assert found.family == 6
    assert found.dst.address.version == 6
    assert found.route is not None
    assert found.route.kind == "bgp"
    assert found.route.learned[0].session.neighbor.version == 6
    assert found.outcome == "allowed"
    assert {c.hook for c in found.checks} == {"filter FORWARD"}
    assert found.path_mtu is not None
    assert found.largest_ping == found.path_mtu - 48  # IPv6 and ICMPv6 headers
    v4 = trace(dual, "shop/api", "shop/web", Port("tcp", 80))
    assert v4.family == 4
    assert v4.largest_ping == (v4.path_mtu or 0) - 28


def test_an_ipv6_ping_is_icmpv6(dual: Cluster) -> None:
    found = trace(dual, "shop/api", "shop/web", Port("icmp", None), family=6)
    assert found.outcome == "allowed"


class WithoutMangleChains:
    """The dual-stack node's bundle with an ip6tables file whose mangle table declares no chain."""

    def __init__(self, bundle: Bundle) -> None:
        self.manifest = bundle.manifest
        self.has = bundle.has
        self._bundle = bundle

    def text(self, name: str) -> str:
        text = self._bundle.text(name)
        if name != IP6TABLES_FILE:
            return text
        head, rest = text.split("*mangle\n", 1)
        return head + "*mangle\nCOMMIT\n" + rest.split("COMMIT\n", 1)[1]


def targets(tables: Mapping[str, Table], table: str) -> list[str]:
    chain = tables[table].chains.get("PREROUTING")
    return [r.target for r in chain.rules] if chain else []


def test_ipv6_keeps_only_the_hooks_whose_chain_the_file_declares() -> None:
    bundle = TreeView.open(EXAMPLES / "dual-stack-mesh" / "rendered").bundle("node-1")
    hooked = {(j.table, j.chain) for j in bundle.manifest.jump_rules}
    assert ("mangle", "PREROUTING") in hooked
    tables = parse_tables(node_text(WithoutMangleChains(bundle), [], 6), 6)  # type: ignore[arg-type]
    assert "cali-PREROUTING" not in tables["mangle"].chains
    assert targets(tables, "mangle") == []  # its hook is not kept in IPv6: nothing to jump to
    assert targets(tables, "raw") == ["cali-PREROUTING"]  # the hooks it declares stay
    v4 = parse_tables(node_text(WithoutMangleChains(bundle), [], 4), 4)  # type: ignore[arg-type]
    assert targets(v4, "mangle") == ["cali-PREROUTING"]


def test_cli_family_6() -> None:
    tree = EXAMPLES / "dual-stack-mesh" / "rendered"
    result = CliRunner().invoke(app, ["node-1", "node-2", "--tree", str(tree), "--family", "6"])
    assert result.exit_code == 0, result.output
    assert "(IPv6)" in result.output.splitlines()[0]
    bad = CliRunner().invoke(app, ["node-1", "node-2", "--tree", str(tree), "--family", "5"])
    assert bad.exit_code == 2


@pytest.fixture(scope="module")
def hosts_with_pods(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    view = TreeView.open(EXAMPLES / "host-protection" / "rendered")
    pods = [{"name": "a", "node": "master-1"}, {"name": "b", "node": "worker-2"}]
    path = tmp_path_factory.mktemp("pods") / "pods.yaml"
    path.write_text(yaml.safe_dump({"pods": pods}))
    return Cluster(view, load_pods(path, view.by_name))


def test_the_tunnel_packet_passes_the_source_nodes_output_host_policy(
    hosts_with_pods: Cluster,
) -> None:
    found = trace(hosts_with_pods, "default/a", "default/b", Port("tcp", 80))
    assert found.outcome == "allowed"
    hooks = [(c.node, c.hook, c.what) for c in found.checks]
    leaving = ("master-1", "filter OUTPUT", "IPIP packet to node worker-2")
    assert hooks.index(leaving) == 1  # after the pod's egress, before the far node's INPUT
    decided = found.checks[1].decided_by
    assert decided is not None
    assert decided.comment == "IPIP to cluster nodes"


def test_without_the_tunnel_accept_host_egress_policy_decides_the_tunnel_packet(
    hosts_with_pods: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_tunnel_accept(node: str, text: str, family: int) -> NodeTables:
        gone = ("IPIP to cluster nodes", "management egress")  # its allow-all egress too
        text = "\n".join(line for line in text.splitlines() if not any(g in line for g in gone))
        return node_tables(node, text + "\n", family)

    monkeypatch.setattr(answer, "node_tables", without_tunnel_accept)
    found = trace(hosts_with_pods, "default/a", "default/b", Port("tcp", 80))
    assert found.outcome == "denied"
    last = found.checks[-1]
    assert (last.node, last.hook, last.passed) == ("master-1", "filter OUTPUT", False)
    decided = last.decided_by
    assert decided is not None
    assert decided.comment == "default deny on *: no host policy allowed it"
