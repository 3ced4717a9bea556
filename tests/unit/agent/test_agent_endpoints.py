"""The agent's view of live endpoints: merged chains, runtime set members, drift watch."""

from __future__ import annotations

import json
from pathlib import Path

from calicc.agent.bundle import load_bundle
from calicc.agent.cni.endpoint_policy import EndpointRecord, rules_for, rules_for_all
from calicc.agent.drift import Watch
from calicc.agent.endpoints import fingerprint, load_endpoints, runtime_members, state_dir
from calicc.agent.ipsets import SetState, desired_sets, diff_sets, summarize
from calicc.agent.iptables import Memo, canonical, parse_rules, plan_ruleset
from calicc.contract.endpoint import PodPolicies, endpoint_rules, with_endpoints
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import CONFLIST, IPTABLES_FILE
from tests.conftest import EXAMPLES

DEMO = EXAMPLES / "policies-demo" / "rendered" / "nodes" / "node-1"
API_SET = "cali40s:Y0wk1bBX7T49x15BqTQ05r8"  # namespace shop, app=api
PORT_SET = "cali40n:pfSn7gpvTdXhnz9puJpFlfW"  # named port http/TCP
DNS_SET = "cali40s:w01VvwdRHS-ei-R0QTBXRyJ"  # k8s-app=kube-dns in any namespace


def manifest() -> NodeManifest:
    return load_bundle(DEMO).manifest


def record(iface: str, address: str, namespace: str, **labels: str) -> EndpointRecord:
    return EndpointRecord(iface, f"c-{iface}", "eth0", address, namespace, labels, {}, ())


def test_runtime_members_follow_current_selectors_and_recorded_named_ports() -> None:
    api = record("caliaaaaaaaaaaa", "10.244.0.5", "shop", app="api")
    web = EndpointRecord(
        "calibbbbbbbbbbb", "c", "eth0", "10.244.0.6", "shop", {"app": "web"}, {},
        ((PORT_SET, "10.244.0.6,tcp:8080"), ("cali40s:gone", "10.244.0.6")),
    )  # fmt: skip
    members = runtime_members([api, web], manifest())
    assert members[API_SET] == {"10.244.0.5"}
    assert members[PORT_SET] == {"10.244.0.6,tcp:8080"}
    assert members[DNS_SET] == frozenset()
    assert "cali40s:gone" not in members


def test_runtime_sets_gain_live_members_and_lose_gone_ones() -> None:
    sets = desired_sets(manifest().ipsets, {API_SET: frozenset({"10.244.0.5"})})
    current = {API_SET: SetState(API_SET, "hash:ip", members=frozenset({"10.244.0.9"}))}
    lines, _ = diff_sets({API_SET: sets[API_SET]}, current)
    assert lines == [f"add {API_SET} 10.244.0.5 -exist", f"del {API_SET} 10.244.0.9 -exist"]
    assert summarize(lines) == [
        f"ipset {API_SET}: add 10.244.0.5",
        f"ipset {API_SET}: del 10.244.0.9",
    ]


def endpoint(iface: str, chain: str = "cali-pi-x") -> tuple[str, ...]:
    return endpoint_rules(iface, PodPolicies(ingress=((chain, "shop/x"),))).rules


def saved(text: str, order: list[str]) -> str:
    """Return `text` as the kernel might hold it: dispatch rules inserted one by one at the top,
    one-word comments unquoted."""
    lines = [ln.replace('"invalid"', "invalid") for ln in text.splitlines()]
    for chain in ("cali-from-wl-dispatch", "cali-to-wl-dispatch"):
        mine = [ln for ln in lines if ln.startswith(f"-A {chain} -") and "-g cali-" in ln]
        rest = [ln for ln in lines if ln not in mine]
        at = next(i for i, ln in enumerate(rest) if ln.startswith(f"-A {chain} "))
        ranked = sorted(mine, key=lambda ln: order.index(ln.split()[3]), reverse=True)
        lines = rest[:at] + ranked + rest[at:]
    return "\n".join(lines) + "\n"


def test_live_endpoints_match_kernel_order_and_quoting_and_gone_ones_are_stale() -> None:
    rules = load_bundle(DEMO).text(IPTABLES_FILE)  # the shared file node.json names for the role
    a = endpoint_rules("caliaaaaaaaaaaa", PodPolicies())
    b = endpoint_rules("calibbbbbbbbbbb", PodPolicies())
    kernel = parse_rules(
        saved(with_endpoints(rules, [a, b]), ["caliaaaaaaaaaaa", "calibbbbbbbbbbb"])
    )
    assert plan_ruleset(parse_rules(with_endpoints(rules, [a, b])), kernel, (), Memo()) == []
    lines = plan_ruleset(parse_rules(with_endpoints(rules, [a])), kernel, (), Memo())
    assert "-X cali-fw-calibbbbbbbbbbb" in lines
    assert "-X cali-tw-calibbbbbbbbbbb" in lines
    assert "-X cali-fw-caliaaaaaaaaaaa" not in lines
    assert "-A cali-from-wl-dispatch -i caliaaaaaaaaaaa -g cali-fw-caliaaaaaaaaaaa" in lines
    assert not any("calibbbbbbbbbbb -g" in ln for ln in lines)


def test_canonical_keeps_the_dispatch_drop_last() -> None:
    moved = ["-j DROP", "-o a -g cali-tw-a"]
    assert canonical("cali-to-wl-dispatch", moved) != canonical(
        "cali-to-wl-dispatch", ["-o a -g cali-tw-a", "-j DROP"]
    )


def test_state_dir_and_records(tmp_path: Path) -> None:
    conflist = load_bundle(DEMO).text(CONFLIST)
    directory = state_dir(tmp_path, conflist)
    assert directory == tmp_path / "var/lib/calicc"
    assert fingerprint(directory) == ()
    assert load_endpoints(directory, manifest()).rules == ()
    (directory / "endpoints").mkdir(parents=True)
    api = record("caliaaaaaaaaaaa", "10.244.0.5", "shop", app="api")
    data = {**api.__dict__, "members": []}
    (directory / "endpoints/caliaaaaaaaaaaa.json").write_text(json.dumps(data))
    assert [name for name, _, _ in fingerprint(directory)] == ["caliaaaaaaaaaaa.json"]
    live = load_endpoints(directory, manifest())
    assert [e.iface for e in live.rules] == ["caliaaaaaaaaaaa"]
    assert live.members[API_SET] == {"10.244.0.5"}


def test_watch_skips_only_unchanged_readable_keys_and_reads_fully_every_n() -> None:
    watch = Watch(enabled=True, full_every=3)
    key = (7, "sha256:x", ())
    assert not watch.unchanged(key)
    watch.settled(key)
    assert watch.unchanged(key)
    assert watch.unchanged(key)
    assert not watch.unchanged(key), "every third interval reads in full"
    assert watch.unchanged(key)
    assert not watch.unchanged((8, "sha256:x", ())), "the generation moved"
    watch.settled((None, "sha256:x", ()))
    assert not watch.unchanged((None, "sha256:x", ())), "no generation id, no skip"
    legacy = Watch(enabled=False)
    legacy.settled(key)
    assert not legacy.unchanged(key)


def test_rules_chosen_once_per_facts_equal_rules_chosen_per_pod() -> None:
    """rules_for_all shares the policy choice between pods with the same facts; each pod still
    gets the chains of its own labels and namespace (labels, namespaces, namespace labels)."""
    pods = [
        record("calia1", "10.244.0.5", "shop", app="api"),
        record("calia2", "10.244.0.6", "shop", app="api"),
        record("caliw1", "10.244.0.7", "shop", app="web"),
        record("calid1", "10.244.0.8", "demo", app="api"),
        EndpointRecord(
            "calit1", "c", "eth0", "10.244.0.9", "shop", {"app": "api"}, {"team": "shop"}, ()
        ),
    ]
    each = tuple(rules_for(r, manifest()) for r in pods)
    assert rules_for_all(pods, manifest()) == each
    shapes = {"\n".join(r.rules).replace(r.iface, "IFACE") for r in each}
    assert len(shapes) >= 2, "some of these pods are selected by policies the others are not"
