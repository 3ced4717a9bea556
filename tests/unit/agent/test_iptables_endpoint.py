"""Endpoint chains for the CNI plugin: which policies apply, the fragment, add/del, merging."""

from __future__ import annotations

import pytest

from calicc.contract.endpoint import (
    PodPolicies,
    add_restore,
    del_restore,
    endpoint_rules,
    named_port_members,
    policies_for_pod,
    selector_sets_for_pod,
    with_endpoints,
)
from calicc.contract.manifest import Ipset, PolicyBinding

EMPTY: dict[str, object] = {"matchExpressions": [], "matchLabels": {}}
WEB: dict[str, object] = {"matchExpressions": [], "matchLabels": {"app": "web"}}
BINDINGS = (
    PolicyBinding(namespace="demo", name="deny", pod_selector=EMPTY, ingress_chain="cali-pi-deny"),
    PolicyBinding(
        namespace="demo",
        name="web",
        pod_selector=WEB,
        ingress_chain="cali-pi-web",
        egress_chain="cali-po-web",
    ),
    PolicyBinding(namespace="other", name="all", pod_selector=EMPTY, ingress_chain="cali-pi-x"),
)
NODE_RULES = """*filter
:cali-FORWARD - [0:0]
:cali-from-wl-dispatch - [0:0]
:cali-to-wl-dispatch - [0:0]
-A cali-FORWARD -i cali+ -j cali-from-wl-dispatch
-A cali-from-wl-dispatch -m comment --comment "Unknown interface" -j DROP
-A cali-to-wl-dispatch -m comment --comment "Unknown interface" -j DROP
COMMIT
"""


def test_policies_for_pod_by_namespace_and_labels() -> None:
    web = policies_for_pod(BINDINGS, "demo", {"app": "web"}, {})
    assert web.ingress == (("cali-pi-deny", "demo/deny"), ("cali-pi-web", "demo/web"))
    assert web.egress == (("cali-po-web", "demo/web"),)
    db = policies_for_pod(BINDINGS, "demo", {"app": "db"}, {})
    assert db == PodPolicies((("cali-pi-deny", "demo/deny"),), ())
    assert policies_for_pod(BINDINGS, "elsewhere", {"app": "web"}, {}) == PodPolicies()


def test_selector_sets_and_named_ports() -> None:
    sets = (
        Ipset(
            name="cali40s:same-ns",
            type="hash:ip",
            selector={"namespace": "demo", "podSelector": WEB},
        ),
        Ipset(
            name="cali40s:ns-sel",
            type="hash:ip",
            selector={"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": EMPTY},
        ),
        Ipset(
            name="cali40n:http",
            type="hash:ip,port",
            selector={"namedPort": "http", "protocol": "TCP"},
        ),
        Ipset(name="cali40all-ipam-pools", type="hash:net", members=("10.0.0.0/8",)),
    )
    assert selector_sets_for_pod(sets, "demo", {"app": "web"}, {"team": "a"}) == (
        "cali40s:ns-sel",
        "cali40s:same-ns",
    )
    assert selector_sets_for_pod(sets, "demo", {"app": "db"}, {"team": "b"}) == ()
    assert selector_sets_for_pod(sets, "prod", {"app": "web"}, {}) == ()
    ports = [("http", "TCP", 8080), ("http", "UDP", 9), ("dns", "UDP", 53)]
    assert named_port_members(sets, "10.244.0.5", ports) == (
        ("cali40n:http", "10.244.0.5,tcp:8080"),
    )


def test_endpoint_chains_default_allow_and_default_deny() -> None:
    open_ep = endpoint_rules("cali0123456789a", PodPolicies())
    assert open_ep.chains == ("cali-fw-cali0123456789a", "cali-tw-cali0123456789a")
    tw_rules = [r for r in open_ep.rules if r.startswith("-A cali-tw-")]
    assert tw_rules[-1].endswith("-j MARK --set-xmark 0x10000/0x10000")
    denied = endpoint_rules("cali0123456789a", policies_for_pod(BINDINGS, "demo", {}, {}))
    tw_rules = [r for r in denied.rules if r.startswith("-A cali-tw-")]
    assert any(r.endswith("-j cali-pi-deny") for r in tw_rules)
    assert tw_rules[-1].endswith("-j DROP")
    assert "default deny" in tw_rules[-1]
    fw_rules = [r for r in denied.rules if r.startswith("-A cali-fw-")]
    assert fw_rules[-1].endswith("-j MARK --set-xmark 0x10000/0x10000")
    assert all(len(c) <= 28 for c in denied.chains)
    with pytest.raises(ValueError, match="interface name"):
        endpoint_rules("cali0123456789abc", PodPolicies())


def test_add_and_del_restore_are_idempotent() -> None:
    ep = endpoint_rules("caliA", PodPolicies())
    first = add_restore(ep, NODE_RULES)
    assert "-I cali-from-wl-dispatch 1 -i caliA -g cali-fw-caliA" in first
    assert "-I cali-to-wl-dispatch 1 -o caliA -g cali-tw-caliA" in first
    live = with_endpoints(NODE_RULES, [ep])
    second = add_restore(ep, live)
    assert "-I " not in second
    assert ":cali-fw-caliA - [0:0]" in second
    removal = del_restore("caliA", live)
    assert removal is not None
    assert "-D cali-from-wl-dispatch -i caliA -g cali-fw-caliA" in removal
    assert "-X cali-fw-caliA" in removal
    assert "-X cali-tw-caliA" in removal
    assert del_restore("caliA", NODE_RULES) is None


def test_with_endpoints_places_dispatch_above_unknown_drop() -> None:
    eps = [endpoint_rules(i, PodPolicies()) for i in ("caliB", "caliA")]
    merged = with_endpoints(NODE_RULES, eps).splitlines()
    dispatch = [line for line in merged if line.startswith("-A cali-from-wl-dispatch")]
    assert dispatch == [
        "-A cali-from-wl-dispatch -i caliA -g cali-fw-caliA",
        "-A cali-from-wl-dispatch -i caliB -g cali-fw-caliB",
        '-A cali-from-wl-dispatch -m comment --comment "Unknown interface" -j DROP',
    ]
    assert merged.index(":cali-fw-caliA - [0:0]") < merged.index(dispatch[0])
    assert merged[-1] == "COMMIT"
    assert merged[-2].startswith("-A cali-tw-caliB")
    assert with_endpoints(NODE_RULES, []) == NODE_RULES
