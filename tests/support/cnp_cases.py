"""The upstream ClusterNetworkPolicy conformance tests, ported as data (tests/support/cnp_model.py).

From sigs.k8s.io/network-policy-api conformance/tests (the v1alpha2 suite, its manifests under
conformance/base), each standard-channel test and the named-port tests, with upstream's
ShortNames, subtest titles, rule order and patches. Upstream runs them on five namespaces of
two pods named after Harry Potter houses; these run on the nine pods of the NetworkPolicy
cases (x, y, z times a, b, c) and probe every pair, so each table states what every pod sees:

- gryffindor is x, slytherin y, hufflepuff z; ravenclaw, the third peer house of the rule
  ordering tests, is the subject's own namespace (x for a gryffindor subject, z for a
  hufflepuff one): its rules still come first and still decide before the others;
- `conformance-house: <house>` on a namespace is its `ns: <name>` label; on a pod, upstream
  gives every pod of a house the label, so a pod selector of it is every pod (`{}`);
- ports: TCP 80 (named `web`) is 80 (named serve-80-tcp), TCP 8080 is 81, UDP 53 (named
  `dns`) is UDP 80 (serve-80-udp), UDP 5353 is UDP 81; the SCTP 9003 matches stay in the
  policies (compiled and installed) but are not probed: the pods serve no SCTP;
- the `::/0` of the inline-CIDR manifests is left out: calicc's pools are IPv4 and it refuses
  IPv6 networks.

tests/unit/support/test_cnp_cases.py holds every table to a reference evaluation of the
policies (tests/support/cnp_oracle.py).
"""

from __future__ import annotations

from tests.support.cnp_model import (
    CnpCase,
    Delete,
    cnp,
    cnp_step,
    gress,
    named,
    nets_peer,
    ns_peer,
    pods_peer,
    prepend,
    sctp,
    set_action,
    set_priority,
    set_protocols,
    swap,
    tcp,
    udp,
)
from tests.support.netpol_model import (
    Create,
    Doc,
    LabelNamespace,
    Probe,
    egress_rule,
    match,
    netpol,
    peer,
    probe,
)
from tests.support.netpol_truth import Edit, expect_peer

TCP, UDP = "TCP", "UDP"
HOUSES = {"x": "gryffindor", "y": "slytherin", "z": "hufflepuff"}
ADMIN, BASELINE = "Admin", "Baseline"


def no(src: str, dst: str) -> Edit:
    """Expect `src` not to reach `dst`."""
    return expect_peer(src, dst, False)


def yes(src: str, dst: str) -> Edit:
    """Expect `src` to reach `dst`."""
    return expect_peer(src, dst, True)


# ---- the rule ordering tests (standard-{ingress,egress}-{tcp,udp}-rules.yaml) -------------------


def ordered(
    tier: str, own: str, deny: tuple[str, list[Doc]], accept: tuple[str, list[Doc]]
) -> list[Doc]:
    """Return upstream's ordered rules: all of `own` (ravenclaw's: Accept, Deny, Pass), a Deny
    (and Pass) of some ports of slytherin, an Accept of some ports of the last house and a
    Deny of the rest of it. Baseline manifests have no Pass rules."""
    passes = tier == ADMIN
    (deny_ns, deny_ports), (accept_ns, accept_ports) = deny, accept
    return [
        gress("allow-ravenclaw-everything", "Accept", [ns_peer(own)]),
        gress("deny-ravenclaw-everything", "Deny", [ns_peer(own)]),
        *([gress("pass-ravenclaw-everything", "Pass", [ns_peer(own)])] if passes else []),
        gress(f"deny-{HOUSES[deny_ns]}-at-ports", "Deny", [ns_peer(deny_ns)], deny_ports),
        *(
            [gress(f"pass-{HOUSES[deny_ns]}-at-ports", "Pass", [ns_peer(deny_ns)], deny_ports)]
            if passes
            else []
        ),
        gress(f"allow-{HOUSES[accept_ns]}-at-ports", "Accept", [ns_peer(accept_ns)], accept_ports),
        gress(f"deny-{HOUSES[accept_ns]}-everything-else", "Deny", [ns_peer(accept_ns)]),
    ]


def ordering_policy(  # noqa: PLR0917 - upstream's manifests differ in these
    name: str,
    tier: str,
    priority: int,
    subject: str,
    direction: str,
    deny: tuple[str, Doc],
    accept: tuple[str, Doc],
) -> Doc:
    """Return a rule ordering manifest of one direction with one port per port rule."""
    rules = ordered(tier, subject, (deny[0], [deny[1]]), (accept[0], [accept[1]]))
    if direction == "ingress":
        return cnp(name, tier, priority, ns_peer(subject), ingress=rules)
    return cnp(name, tier, priority, ns_peer(subject), egress=rules)


def titles(direction: str, protocol: str, action: str) -> list[str]:
    """Return upstream's two subtest titles of `action` (allow, deny, pass) for one protocol."""
    return [
        f"Should support an '{action}-{direction}' policy for {protocol} protocol; "
        "ensure rule ordering is respected",
        f"Should support {'an' if action == 'allow' else 'a'} '{action}-{direction}' policy "
        f"for {protocol} protocol at the specified port",
    ]


def ordering_case(
    short: str,
    manifest: str,
    policy: Doc,
    direction: str,
    states: list[list[Probe]],
) -> CnpCase:
    """Return a rule ordering test: the manifest, rules 0/1 swapped, then (Admin) rules 0/2
    and 3/4 swapped, each patch on top of the last as upstream's subtests share the policy;
    `states` are the probes after each."""
    protocol = TCP if "TCP" in short else UDP
    patched = swap(policy, direction, 0, 1)
    steps = [
        cnp_step(titles(direction, protocol, "allow"), Create(policy), probes=states[0]),
        cnp_step(titles(direction, protocol, "deny"), Create(patched), probes=states[1]),
    ]
    if len(states) > 2:
        patched = swap(patched, direction, 0, 2)
        pass_titles = titles(direction, protocol, "pass")
        steps.append(cnp_step(pass_titles[:1], Create(patched), probes=states[2]))
        patched = swap(patched, direction, 3, 4)
        steps.append(cnp_step(pass_titles[1:], Create(patched), probes=states[3]))
    return CnpCase(short, manifest, tuple(steps))


def both(port_80: list[Edit], port_81: list[Edit], protocol: str) -> list[Probe]:
    """Return probes of ports 80 and 81 of `protocol` with their edits."""
    return [probe(80, protocol, *port_80), probe(81, protocol, *port_81)]


# Admin: subject x (TCP) or z (UDP); the ravenclaw rules are the subject's own namespace.
ADMIN_INGRESS_TCP = ordering_policy(
    "ingress-tcp", ADMIN, 3, "x", "ingress", ("y", tcp(80)), ("z", tcp(80))
)
ADMIN_INGRESS_UDP = ordering_policy(
    "ingress-udp", ADMIN, 4, "z", "ingress", ("y", udp(81)), ("x", udp(80))
)
ADMIN_EGRESS_TCP = ordering_policy(
    "egress-tcp", ADMIN, 6, "x", "egress", ("y", tcp(80)), ("z", tcp(81))
)
ADMIN_EGRESS_UDP = ordering_policy(
    "egress-udp", ADMIN, 7, "z", "egress", ("y", udp(81)), ("x", udp(80))
)
BASELINE_INGRESS_TCP = ordering_policy(
    "default", BASELINE, 10, "x", "ingress", ("y", tcp(80)), ("z", tcp(80))
)
BASELINE_INGRESS_UDP = ordering_policy(
    "default", BASELINE, 10, "z", "ingress", ("y", udp(81)), ("x", udp(80))
)
BASELINE_EGRESS_TCP = ordering_policy(
    "default", BASELINE, 10, "x", "egress", ("y", tcp(80)), ("z", tcp(81))
)
BASELINE_EGRESS_UDP = ordering_policy(
    "default", BASELINE, 10, "z", "egress", ("y", udp(81)), ("x", udp(80))
)

ORDERING_CASES = (
    ordering_case(
        "CNPAdminTierIngressTCP",
        "standard-ingress-tcp-rules.yaml",
        ADMIN_INGRESS_TCP,
        "ingress",
        [
            both([no("y", "x")], [no("z", "x")], TCP),
            both([no("x", "x"), no("y", "x")], [no("x", "x"), no("z", "x")], TCP),
            both([no("y", "x")], [no("z", "x")], TCP),  # x passes: no NetworkPolicy
            both([], [no("z", "x")], TCP),  # y passes on 80
        ],
    ),
    ordering_case(
        "CNPAdminTierIngressUDP",
        "standard-ingress-udp-rules.yaml",
        ADMIN_INGRESS_UDP,
        "ingress",
        [
            both([], [no("y", "z"), no("x", "z")], UDP),
            both([no("z", "z")], [no("z", "z"), no("y", "z"), no("x", "z")], UDP),
            both([], [no("y", "z"), no("x", "z")], UDP),
            both([], [no("x", "z")], UDP),
        ],
    ),
    ordering_case(
        "CNPAdminTierEgressTCP",
        "standard-egress-tcp-rules.yaml",
        ADMIN_EGRESS_TCP,
        "egress",
        [
            both([no("x", "y"), no("x", "z")], [], TCP),
            both([no("x", "x"), no("x", "y"), no("x", "z")], [no("x", "x")], TCP),
            both([no("x", "y"), no("x", "z")], [], TCP),
            both([no("x", "z")], [], TCP),
        ],
    ),
    ordering_case(
        "CNPAdminTierEgressUDP",
        "standard-egress-udp-rules.yaml",
        ADMIN_EGRESS_UDP,
        "egress",
        [
            both([], [no("z", "y"), no("z", "x")], UDP),
            both([no("z", "z")], [no("z", "z"), no("z", "y"), no("z", "x")], UDP),
            both([], [no("z", "y"), no("z", "x")], UDP),
            both([], [no("z", "x")], UDP),
        ],
    ),
    ordering_case(
        "CNPBaselineTierIngressTCP",
        "standard-ingress-tcp-rules.yaml",
        BASELINE_INGRESS_TCP,
        "ingress",
        [
            both([no("y", "x")], [no("z", "x")], TCP),
            both([no("x", "x"), no("y", "x")], [no("x", "x"), no("z", "x")], TCP),
        ],
    ),
    ordering_case(
        "CNPBaselineTierIngressUDP",
        "standard-ingress-udp-rules.yaml",
        BASELINE_INGRESS_UDP,
        "ingress",
        [
            both([], [no("y", "z"), no("x", "z")], UDP),
            both([no("z", "z")], [no("z", "z"), no("y", "z"), no("x", "z")], UDP),
        ],
    ),
    ordering_case(
        "CNPBaselineTierEgressTCP",
        "standard-egress-tcp-rules.yaml",
        BASELINE_EGRESS_TCP,
        "egress",
        [
            both([no("x", "y"), no("x", "z")], [], TCP),
            both([no("x", "x"), no("x", "y"), no("x", "z")], [no("x", "x")], TCP),
        ],
    ),
    ordering_case(
        "CNPBaselineTierEgressUDP",
        "standard-egress-udp-rules.yaml",
        BASELINE_EGRESS_UDP,
        "egress",
        [
            both([], [no("z", "y"), no("z", "x")], UDP),
            both([no("z", "z")], [no("z", "z"), no("z", "y"), no("z", "x")], UDP),
        ],
    ),
)


# ---- both directions at once (standard-gress-rules-combined.yaml) ------------------------------

GRESS_DENY = ("y", [tcp(80), udp(80), sctp(9003)])
ADMIN_GRESS = cnp(
    "gress-rules",
    ADMIN,
    15,
    ns_peer("x"),
    egress=ordered(ADMIN, "x", GRESS_DENY, ("z", [tcp(81), udp(81), sctp(9003)])),
    ingress=ordered(ADMIN, "x", GRESS_DENY, ("z", [tcp(80), udp(81), sctp(9003)])),
)
BASELINE_GRESS = cnp(
    "default",
    BASELINE,
    10,
    ns_peer("x"),
    egress=ordered(BASELINE, "x", GRESS_DENY, ("z", [tcp(81), udp(81), sctp(9003)])),
    ingress=ordered(BASELINE, "x", GRESS_DENY, ("z", [tcp(80), udp(81), sctp(9003)])),
)


def gress_titles(action: str) -> list[str]:
    """Return upstream's two subtest titles of `action` across protocols."""
    return [
        f"Should support an '{action}-gress' policy across different protocols",
        f"Should support {'an' if action == 'allow' else 'a'} '{action}-gress' policy across "
        "different protocols at the specified ports",
    ]


def four(edits: dict[tuple[int, str], list[Edit]], extra: list[Edit] | None = None) -> list[Probe]:
    """Return probes of TCP and UDP 80 and 81, each with its edits and then `extra`."""
    return [
        probe(port, protocol, *edits.get((port, protocol), []), *(extra or []))
        for protocol in (TCP, UDP)
        for port in (80, 81)
    ]


GRESS_START = {
    (80, TCP): [no("x", "y"), no("x", "z"), no("y", "x")],
    (81, TCP): [no("z", "x")],
    (80, UDP): [no("x", "y"), no("x", "z"), no("y", "x"), no("z", "x")],
}


def gress_case(short: str, policy: Doc) -> CnpCase:
    """Return a gress test: the manifest and rules 0/1 swapped in both directions, then
    (Admin) rules 0/2 and 3/4 swapped, each on top of the last."""
    both_ways = swap(swap(policy, "ingress", 0, 1), "egress", 0, 1)
    steps = [
        cnp_step(gress_titles("allow"), Create(policy), probes=four(GRESS_START)),
        cnp_step(gress_titles("deny"), Create(both_ways), probes=four(GRESS_START, [no("x", "x")])),
    ]
    if policy["spec"]["tier"] == ADMIN:
        both_ways = swap(swap(both_ways, "ingress", 0, 2), "egress", 0, 2)
        steps.append(
            cnp_step(gress_titles("pass")[:1], Create(both_ways), probes=four(GRESS_START))
        )
        both_ways = swap(swap(both_ways, "ingress", 3, 4), "egress", 3, 4)
        passed = {
            (80, TCP): [no("x", "z")],
            (81, TCP): [no("z", "x")],
            (80, UDP): [no("x", "z"), no("z", "x")],
        }
        steps.append(cnp_step(gress_titles("pass")[1:], Create(both_ways), probes=four(passed)))
    return CnpCase(short, "standard-gress-rules-combined.yaml", tuple(steps))


# ---- priority (standard-priority-field.yaml) --------------------------------------------------

GRYFFINDOR_PODS = pods_peer(match(ns="x"), match())
SLYTHERIN_PODS = pods_peer(match(ns="y"), match())


def house_policy(name: str, tier: str, priority: int, action: str, subject: Doc) -> Doc:
    """Return a policy whose one rule each way takes `action` with slytherin's pods."""
    verb = {"Accept": "allow", "Deny": "deny", "Pass": "pass"}[action]
    peers = [SLYTHERIN_PODS] if "pods" in subject else [{"namespaces": match(ns="y")}]
    return cnp(
        name,
        tier,
        priority,
        subject,
        ingress=[gress(f"{verb}-all-ingress-from-slytherin", action, peers)],
        egress=[gress(f"{verb}-all-egress-to-slytherin", action, peers)],
    )


PRIORITY_60 = house_policy(
    "old-priority-60-new-priority-40-example", ADMIN, 60, "Pass", GRYFFINDOR_PODS
)
PRIORITY_CASE = CnpCase(
    "CNPAdminTierPriorityField",
    "standard-priority-field.yaml",
    (
        cnp_step(
            [
                "Should Deny traffic from slytherin to gryffindor respecting admin CNP",
                "Should Deny traffic to slytherin from gryffindor respecting admin CNP",
            ],
            Create(house_policy("priority-50-example", ADMIN, 50, "Deny", GRYFFINDOR_PODS)),
            Create(PRIORITY_60),
            Create(house_policy("default", BASELINE, 10, "Accept", GRYFFINDOR_PODS)),
            probes=both([no("y", "x"), no("x", "y")], [no("y", "x"), no("x", "y")], TCP),
        ),
        cnp_step(
            [
                "Should respect admin CNP priority field; thus passing both ingress and egress "
                "traffic over to baseline CNP"
            ],
            Create(set_priority(PRIORITY_60, 40)),
            probes=both([], [], TCP),
        ),
    ),
)

# ---- Admin, NetworkPolicy and Baseline together (standard-anp-np-banp.yaml) ---------------------

GRYFFINDOR = {"namespaces": match(ns="x")}
PASS_EXAMPLE = house_policy("pass-example", ADMIN, 10, "Deny", GRYFFINDOR)
NP_NAME = "allow-gress-from-to-slytherin-to-gryffindor"
SLYTHERIN_NP = netpol(
    NP_NAME,
    match(),
    ingress=[{"from": [peer(None, match(ns="y"))]}],
    egress=[egress_rule([peer(None, match(ns="y"))])],
    namespace="x",
)
X_ALONE = [no("", "x"), no("x", "")]  # the NetworkPolicy isolates x; Admin denies slytherin
INGRESS_PASSED = set_action(PASS_EXAMPLE, "ingress", 0, "Pass")
INTEGRATION_CASE = CnpCase(
    "CNPAdminTierIntegration",
    "standard-anp-np-banp.yaml",
    (
        cnp_step(
            [
                "Should Deny traffic from slytherin to gryffindor respecting admin CNP",
                "Should Deny traffic to slytherin from gryffindor respecting admin CNP",
            ],
            Create(PASS_EXAMPLE),
            Create(SLYTHERIN_NP),
            Create(house_policy("default", BASELINE, 10, "Deny", GRYFFINDOR)),
            probes=both(X_ALONE, X_ALONE, TCP),
        ),
        cnp_step(
            [
                "Should support a 'pass-ingress' policy for admin CNP and respect the match for "
                "network policy"
            ],
            Create(INGRESS_PASSED),
            probes=both([*X_ALONE, yes("y", "x")], [*X_ALONE, yes("y", "x")], TCP),
        ),
        cnp_step(
            [
                "Should support a 'pass-egress' policy for admin CNP and respect the match for "
                "network policy"
            ],
            Create(set_action(INGRESS_PASSED, "egress", 0, "Pass")),
            probes=both(
                [*X_ALONE, yes("y", "x"), yes("x", "y")],
                [*X_ALONE, yes("y", "x"), yes("x", "y")],
                TCP,
            ),
        ),
        cnp_step(
            [
                "Should support a 'pass-ingress' policy for admin CNP and respect the match for "
                "baseline cluster network policy",
                "Should support a 'pass-egress' policy for admin CNP and respect the match for "
                "baseline cluster network policy",
            ],
            Delete("x", NP_NAME),
            probes=both([no("y", "x"), no("x", "y")], [no("y", "x"), no("x", "y")], TCP),
        ),
    ),
)

# ---- egress to networks (standard-egress-inline-cidr-rules.yaml) ------------------------------

CIDR_EGRESS = [
    gress("allow-egress-to-slytherin", "Accept", [SLYTHERIN_PODS]),
    gress("deny-egress-to-internet", "Deny", [nets_peer("0.0.0.0/0")]),  # upstream adds ::/0
]
POD_IPS = gress("allow-egress-to-specific-podIPs", "Accept", [nets_peer("{x/b}/32", "{z/a}/32")])
X_ONLY_TO_Y = [no("x", "x"), no("x", "z")]


def cidr_case(short: str, policy: Doc) -> CnpCase:
    """Return an inline-CIDR test: slytherin relabelled away and back, then pod /32s first."""
    deny_title = "Should support a 'deny-egress' rule policy for egress-cidr-peer"
    tables = [probe(80, TCP, *X_ONLY_TO_Y), probe(80, UDP, *X_ONLY_TO_Y)]
    pod_ips = [*X_ONLY_TO_Y, yes("x", "x/b"), yes("x", "z/a")]
    return CnpCase(
        short,
        "standard-egress-inline-cidr-rules.yaml",
        (
            cnp_step([deny_title], Create(policy), probes=tables),
            cnp_step(
                [deny_title],
                LabelNamespace("y", {"ns": "denied-namespace-label"}),
                probes=[probe(80, TCP, no("x", "")), probe(80, UDP, no("x", ""))],
            ),
            cnp_step([deny_title], LabelNamespace("y", {"ns": "y"}), probes=tables),
            cnp_step(
                ["Should support an 'allow-egress' rule policy for egress-cidr-peer"],
                Create(prepend(policy, "egress", POD_IPS)),
                probes=[probe(80, TCP, *pod_ips), probe(80, UDP, *pod_ips)],
            ),
        ),
    )


# ---- named ports (the experimental *-rules.go tests that patch a rule to a named port) -------


def named_case(short: str, manifest: str, policy: Doc, probes: list[Probe]) -> CnpCase:
    """Return a named-port test: `policy` (already patched) and its probes."""
    direction = "ingress" if "Ingress" in short else "egress"
    title = f"Should support an 'allow-{direction}' policy for named port"
    return CnpCase(short, manifest, (cnp_step([title], Create(policy), probes=probes),))


WEB, DNS = named("serve-80-tcp"), named("serve-80-udp")  # upstream's `web` and `dns`
NAMED_CASES = (
    named_case(
        "CNPAdminTierIngressNamedPort",
        "standard-ingress-udp-rules.yaml",
        set_protocols(ADMIN_INGRESS_UDP, "ingress", 5, [DNS]),
        [*both([], [no("y", "z"), no("x", "z")], UDP), probe(80, TCP, no("x", "z"))],
    ),
    named_case(
        "CNPAdminTierEgressNamedPort",
        "standard-egress-tcp-rules.yaml",
        set_protocols(ADMIN_EGRESS_TCP, "egress", 5, [WEB]),
        [*both([no("x", "y")], [no("x", "z")], TCP), probe(80, UDP, no("x", "z"))],
    ),
    named_case(
        "CNPBaselineTierIngressNamedPort",
        "standard-ingress-tcp-rules.yaml",
        set_protocols(BASELINE_INGRESS_TCP, "ingress", 3, [WEB]),
        [*both([no("y", "x")], [no("z", "x")], TCP), probe(80, UDP, no("z", "x"))],
    ),
    named_case(
        "CNPBaselineTierEgressNamedPort",
        "standard-egress-udp-rules.yaml",
        set_protocols(BASELINE_EGRESS_UDP, "egress", 3, [DNS]),
        [*both([], [no("z", "y"), no("z", "x")], UDP), probe(80, TCP, no("z", "x"))],
    ),
)

CASES: tuple[CnpCase, ...] = (
    *ORDERING_CASES,
    gress_case("CNPAdminTierGress", ADMIN_GRESS),
    gress_case("CNPBaselineTierGress", BASELINE_GRESS),
    PRIORITY_CASE,
    INTEGRATION_CASE,
    cidr_case(
        "CNPAdminTierEgressInlineCIDRPeers",
        cnp("inline-cidr-as-peers-example", ADMIN, 85, GRYFFINDOR_PODS, egress=CIDR_EGRESS),
    ),
    cidr_case(
        "CNPBaselineTierEgressInlineCIDRPeers",
        cnp("default", BASELINE, 10, ns_peer("x"), egress=CIDR_EGRESS),
    ),
    *NAMED_CASES,
)
# Not ported: the SCTP tests (CNP{Admin,Baseline}Tier{Ingress,Egress}SCTP: the pods serve no
# SCTP and this kernel may have none) and the node peer tests (CNP{Admin,Baseline}Tier
# EgressNodePeers: calicc refuses `nodes` peers, the experimental channel).
UNPORTED = (
    "CNPAdminTierIngressSCTP",
    "CNPAdminTierEgressSCTP",
    "CNPBaselineTierIngressSCTP",
    "CNPBaselineTierEgressSCTP",
    "CNPAdminTierEgressNodePeers",
    "CNPBaselineTierEgressNodePeers",
)
