"""The upstream NetworkPolicy e2e cases, ported as data (tests/support/netpol_model.py).

From kubernetes/kubernetes test/e2e/network/netpol/network_policy.go: the "NetworkPolicy
between server and client" cases (TCP), the UDP ones and the SCTP ones, in upstream's order
and with upstream's titles, policy names and probes. Upstream now creates only the pods a case
needs; these run every case on all nine pods (x, y, z times a, b, c, as upstream's earlier
model did), so an expectation names every pod the policy touches (e.g. z/b beside y/b when the
namespace selector is "not x"). tests/unit/support/test_netpol_cases.py holds each table to a
reference evaluation of the policies, so a port that drops a pod fails there.

Pods are labelled pod=<name> and namespaces ns=<name> (plus kubernetes.io/metadata.name);
every pod serves TCP and UDP on 80 and 81 with the ports named serve-80-tcp, serve-81-udp, ...
"""

from __future__ import annotations

from tests.support.netpol_model import (
    NS_LABEL,
    Case,
    Create,
    DeleteAll,
    LabelNamespace,
    LabelPod,
    Step,
    block,
    egress_rule,
    expr,
    match,
    netpol,
    ns_named,
    peer,
    port,
    probe,
    rule,
    step,
)
from tests.support.netpol_truth import all_egress, all_ingress, expect_peer

TCP, UDP, SCTP = "TCP", "UDP", "SCTP"
DENY_X = expect_peer("", "x", False)  # nothing reaches namespace x
ONLY_Y_TO_XA = (expect_peer("x", "x/a", False), expect_peer("z", "x/a", False))
A = match(pod="a")


def _case(name: str, *steps: Step, labels: bool = False) -> Case:
    return Case(name, steps, labels=labels)


CASES: tuple[Case, ...] = (
    _case(
        "should support a 'default-deny-ingress' policy",
        step(Create(netpol("deny-ingress", match(), ingress=[])), probes=[probe(80, TCP, DENY_X)]),
    ),
    _case(
        "should support a 'default-deny-all' policy",
        step(
            Create(netpol("deny-all", match(), ingress=[], egress=[])),
            probes=[probe(80, TCP, DENY_X, expect_peer("x", "", False))],
        ),
    ),
    _case(
        "should enforce policy to allow traffic from pods within server namespace based on "
        "PodSelector",
        step(
            Create(netpol("x-a-allows-x-b", A, ingress=[rule([peer(match(pod="b"))])])),
            probes=[probe(80, TCP, all_ingress("x/a", False), expect_peer("x/b", "x/a", True))],
        ),
    ),
    _case(
        "should enforce policy to allow ingress traffic for a target",
        step(
            Create(netpol("deny-all", match(), ingress=[])),
            Create(netpol("allow-all-to-a", A, ingress=[rule([peer(match(), match())])])),
            probes=[probe(80, TCP, DENY_X, all_ingress("x/a", True))],
        ),
    ),
    _case(
        "should enforce policy to allow ingress traffic from pods in all namespaces",
        step(
            Create(netpol("allow-from-another-ns", A, ingress=[rule([peer(None, match())])])),
            probes=[probe(80, TCP)],
        ),
    ),
    _case(
        "should enforce policy to allow traffic only from a different namespace, based on "
        "NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector", A, ingress=[rule([peer(None, ns_named("y"))])]
                )
            ),
            probes=[probe(80, TCP, *ONLY_Y_TO_XA)],
        ),
    ),
    _case(
        "should enforce policy based on PodSelector with MatchExpressions",
        step(
            Create(netpol("x-a-allows-x-b", A, ingress=[rule([peer(expr("pod", "In", "b"))])])),
            probes=[probe(80, TCP, all_ingress("x/a", False), expect_peer("x/b", "x/a", True))],
        ),
    ),
    _case(
        "should enforce policy based on NamespaceSelector with MatchExpressions",
        step(
            Create(
                netpol(
                    "allow-ns-y-match-selector",
                    A,
                    ingress=[rule([peer(None, expr(NS_LABEL, "In", "y"))])],
                )
            ),
            probes=[probe(80, TCP, *ONLY_Y_TO_XA)],
        ),
    ),
    _case(
        "should enforce policy based on PodSelector or NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-ns-y-match-selector",
                    A,
                    ingress=[
                        rule(
                            [
                                peer(None, expr(NS_LABEL, "NotIn", "x")),
                                peer(match(pod="b")),
                            ]
                        )
                    ],
                )
            ),
            probes=[
                probe(80, TCP, expect_peer("x/a", "x/a", False), expect_peer("x/c", "x/a", False))
            ],
        ),
    ),
    _case(
        "should enforce policy based on PodSelector and NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-ns-y-podselector-and-nsselector",
                    A,
                    ingress=[rule([peer(match(pod="b"), expr(NS_LABEL, "NotIn", "x"))])],
                )
            ),
            probes=[
                probe(
                    80,
                    TCP,
                    all_ingress("x/a", False),
                    expect_peer("y/b", "x/a", True),
                    expect_peer("z/b", "x/a", True),
                )
            ],
        ),
    ),
    _case(
        "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
        step(
            Create(
                netpol(
                    "allow-ns-y-z-pod-b-c",
                    A,
                    ingress=[
                        rule([peer(expr("pod", "In", "b", "c"), expr(NS_LABEL, "NotIn", "x"))])
                    ],
                )
            ),
            probes=[
                probe(80, TCP, expect_peer("x", "x/a", False), expect_peer("*/a", "x/a", False))
            ],
        ),
    ),
    _case(
        "should enforce policy based on any PodSelectors",
        step(
            Create(
                netpol(
                    "allow-ns-x-pod-b-c",
                    A,
                    ingress=[rule([peer(match(pod="b")), peer(match(pod="c"))])],
                )
            ),
            probes=[
                probe(
                    80,
                    TCP,
                    all_ingress("x/a", False),
                    expect_peer("x/b", "x/a", True),
                    expect_peer("x/c", "x/a", True),
                )
            ],
        ),
    ),
    _case(
        "should enforce policy to allow traffic only from a pod in a different namespace based "
        "on PodSelector and NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-ns-y-pod-a-via-namespace-pod-selector",
                    A,
                    ingress=[rule([peer(A, ns_named("y"))])],
                )
            ),
            probes=[probe(80, TCP, all_ingress("x/a", False), expect_peer("y/a", "x/a", True))],
        ),
    ),
    _case(
        "should enforce policy based on Ports",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port(81, TCP)])],
                )
            ),
            probes=[probe(81, TCP, *ONLY_Y_TO_XA, expect_peer("y", "x/a", True))],
        ),
    ),
    _case(
        "should enforce multiple, stacked policies with overlapping podSelectors",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port(81, TCP)])],
                )
            ),
            probes=[
                probe(81, TCP, *ONLY_Y_TO_XA, expect_peer("y", "x/a", True)),
                probe(80, TCP, all_ingress("x/a", False)),
            ],
        ),
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector-80",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port(80, TCP)])],
                )
            ),
            probes=[probe(80, TCP, *ONLY_Y_TO_XA, expect_peer("y", "x/a", True))],
        ),
    ),
    _case(
        "should support allow-all policy",
        step(
            Create(netpol("allow-all", match(), ingress=[rule()])),
            probes=[probe(80, TCP), probe(81, TCP)],
        ),
    ),
    _case(
        "should allow ingress access on one named port",
        step(
            Create(netpol("allow-all", match(), ingress=[rule(None, [port("serve-81-tcp")])])),
            probes=[probe(81, TCP), probe(80, TCP, DENY_X)],
        ),
    ),
    _case(
        "should allow ingress access from namespace on one named port",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector-80",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port("serve-80-tcp", TCP)])],
                )
            ),
            probes=[probe(80, TCP, *ONLY_Y_TO_XA), probe(81, TCP, all_ingress("x/a", False))],
        ),
    ),
    _case(
        "should allow egress access on one named port",
        step(
            Create(
                netpol("allow-egress", match(), egress=[egress_rule(None, [port("serve-80-tcp")])])
            ),
            probes=[probe(80, TCP), probe(81, TCP, expect_peer("x", "", False))],
        ),
    ),
    _case(
        "should enforce updated policy",
        step(
            Create(netpol("allow-all-mutate-to-deny-all", match(), ingress=[rule()])),
            probes=[probe(81, TCP)],
        ),
        step(
            Create(netpol("allow-all-mutate-to-deny-all", match(), ingress=[])),
            probes=[probe(81, TCP, DENY_X)],
        ),
    ),
    _case(
        "should allow ingress access from updated namespace",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector",
                    A,
                    ingress=[rule([peer(None, match(ns2="updated"))])],
                )
            ),
            probes=[probe(80, TCP, all_ingress("x/a", False))],
        ),
        step(
            LabelNamespace("y", {"ns2": "updated"}),
            probes=[probe(80, TCP, all_ingress("x/a", False), expect_peer("y", "", True))],
        ),
        labels=True,
    ),
    _case(
        "should allow ingress access from updated pod",
        step(
            Create(
                netpol(
                    "allow-client-a-via-pod-selector",
                    A,
                    ingress=[rule([peer(match(pod="b", pod2="updated"))])],
                )
            ),
            probes=[probe(80, TCP, all_ingress("x/a", False))],
        ),
        step(
            LabelPod("x/b", {"pod": "b", "pod2": "updated"}),
            probes=[probe(80, TCP, all_ingress("x/a", False), expect_peer("x/b", "x/a", True))],
        ),
        labels=True,
    ),
    _case(
        "should deny ingress from pods on other namespaces",
        step(
            Create(netpol("deny-empty-policy", match(), ingress=[rule([peer(match())])])),
            probes=[probe(80, TCP, expect_peer("y", "x", False), expect_peer("z", "x", False))],
        ),
    ),
    _case(
        "should deny ingress access to updated pod",
        step(
            Create(netpol("deny-ingress-via-label-selector", match(target="isolated"), ingress=[])),
            probes=[probe(80, TCP)],
        ),
        step(
            LabelPod("x/a", {"target": "isolated"}),
            probes=[probe(80, TCP, all_ingress("x/a", False))],
        ),
        labels=True,
    ),
    _case(
        "should deny egress from pods based on PodSelector",
        step(
            Create(netpol("deny-egress-pod-a", A, egress=[])),
            probes=[probe(80, TCP, all_egress("x/a", False))],
        ),
    ),
    _case(
        "should deny egress from all pods in a namespace",
        step(
            Create(netpol("deny-egress-ns-x", match(), egress=[])),
            probes=[probe(80, TCP, expect_peer("x", "", False))],
        ),
    ),
    _case(
        "should work with Ingress, Egress specified together",
        step(
            Create(
                netpol(
                    "allow-client-a-via-pod-selector",
                    A,
                    ingress=[rule([peer(match(pod="b"))])],
                    egress=[egress_rule(None, [port(80)])],
                )
            ),
            probes=[
                probe(80, TCP, all_ingress("x/a", False), expect_peer("x/b", "x/a", True)),
                probe(
                    81,
                    TCP,
                    all_ingress("x/a", False),
                    all_egress("x/a", False),
                    expect_peer("x/b", "x/a", True),
                ),
            ],
        ),
    ),
    _case(
        "should support denying of egress traffic on the client side (even if the server "
        "explicitly allows this traffic)",
        step(
            Create(
                netpol("allow-to-ns-y-pod-a", A, egress=[egress_rule([peer(A, ns_named("y"))])])
            ),
            Create(
                netpol(
                    "allow-from-xa-on-ya-match-selector",
                    A,
                    ingress=[rule([peer(A, ns_named("x"))])],
                    namespace="y",
                )
            ),
            Create(
                netpol(
                    "allow-from-xa-on-yb-match-selector",
                    match(pod="b"),
                    ingress=[rule([peer(A, ns_named("x"))])],
                    namespace="y",
                )
            ),
            probes=[
                probe(
                    80,
                    TCP,
                    expect_peer("x/a", "", False),
                    expect_peer("", "y/a", False),
                    expect_peer("x/a", "y/a", True),
                    expect_peer("", "y/b", False),
                )
            ],
        ),
    ),
    _case(
        "should enforce egress policy allowing traffic to a server in a different namespace "
        "based on PodSelector and NamespaceSelector",
        step(
            Create(
                netpol("allow-to-ns-y-pod-a", A, egress=[egress_rule([peer(A, ns_named("y"))])])
            ),
            probes=[probe(80, TCP, all_egress("x/a", False), expect_peer("x/a", "y/a", True))],
        ),
    ),
    _case(
        "should enforce ingress policy allowing any port traffic to a server on a specific "
        "protocol",
        step(
            Create(netpol("allow-ingress-by-proto", A, ingress=[rule(None, [port(None, TCP)])])),
            probes=[probe(80, TCP), probe(80, UDP, expect_peer("", "x/a", False))],
        ),
    ),
    _case(
        "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
        step(
            Create(netpol("allow-ingress-port-80", match(), ingress=[rule(None, [port(80)])])),
            probes=[probe(81, TCP, DENY_X)],
        ),
        step(Create(netpol("allow-ingress", match(), ingress=[rule()])), probes=[probe(81, TCP)]),
    ),
    _case(
        "should enforce multiple egress policies with egress allow-all policy taking precedence",
        step(
            Create(netpol("allow-egress-port-80", match(), egress=[egress_rule(None, [port(80)])])),
            probes=[probe(81, TCP, expect_peer("x", "", False))],
        ),
        step(
            Create(netpol("allow-egress", match(), egress=[egress_rule()])),
            probes=[probe(81, TCP)],
        ),
    ),
    _case(
        "should stop enforcing policies after they are deleted",
        step(
            Create(netpol("deny-all", match(), ingress=[], egress=[])),
            probes=[probe(80, TCP, expect_peer("x", "", False), DENY_X)],
        ),
        step(DeleteAll(), probes=[probe(80, TCP)]),
    ),
    _case(
        "should allow egress access to server in CIDR block",
        step(
            Create(
                netpol(
                    "allow-client-a-via-cidr-egress-rule",
                    A,
                    egress=[egress_rule([block("{y/b}/32")])],
                )
            ),
            probes=[probe(80, TCP, all_egress("x/a", False), expect_peer("x/a", "y/b", True))],
        ),
    ),
    _case(
        "should enforce except clause while egress access to server in CIDR block",
        step(
            Create(
                netpol(
                    "allow-client-a-via-cidr-egress-rule",
                    A,
                    egress=[egress_rule([block("{x/b/4}", "{x/b}/32")])],
                )
            ),
            probes=[probe(80, TCP, expect_peer("x/a", "x/b", False))],
        ),
    ),
    _case(
        "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
        step(
            Create(
                netpol(
                    "allow-client-a-via-cidr-egress-rule",
                    A,
                    egress=[egress_rule([block("{x/b/4}", "{x/b}/32")])],
                )
            ),
            probes=[probe(80, TCP, expect_peer("x/a", "x/b", False))],
        ),
        step(
            Create(
                netpol(
                    "allow-client-a-via-cidr-egress-rule",
                    A,
                    egress=[egress_rule([block("{x/b}/32")])],
                )
            ),
            probes=[probe(80, TCP, all_egress("x/a", False), expect_peer("x/a", "x/b", True))],
        ),
    ),
    _case(
        "should enforce policies to check ingress and egress policies can be controlled "
        "independently based on PodSelector",
        step(
            Create(netpol("allow-egress-for-target", A, egress=[egress_rule()])),
            probes=[probe(80, TCP)],
        ),
        step(
            Create(netpol("deny-ingress-via-label-selector", A, ingress=[])),
            probes=[probe(80, TCP, all_ingress("x/a", False))],
        ),
    ),
    _case(
        "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin "
        "doesn't support SCTP",
        step(
            Create(netpol("deny-ingress", match(), ingress=[])),
            Create(
                netpol(
                    "allow-only-sctp-ingress-on-port-81", A, ingress=[rule(None, [port(81, SCTP)])]
                )
            ),
            probes=[probe(81, TCP, DENY_X)],
        ),
    ),
    _case(
        "should properly isolate pods that are selected by a policy allowing SCTP, even if the "
        "plugin doesn't support SCTP",
        step(
            Create(
                netpol(
                    "allow-only-sctp-ingress-on-port-80", A, ingress=[rule(None, [port(80, SCTP)])]
                )
            ),
            probes=[probe(81, TCP, all_ingress("x/a", False))],
        ),
    ),
    _case(
        "should not allow access by TCP when a policy specifies only UDP",
        step(
            Create(
                netpol(
                    "allow-only-udp-ingress-on-port-81", A, ingress=[rule(None, [port(81, UDP)])]
                )
            ),
            probes=[probe(81, TCP, all_ingress("x/a", False))],
        ),
    ),
    _case(
        "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels "
        "using default ns label",
        step(
            Create(
                netpol(
                    "allow-client-a-via-ns-selector-for-immutable-ns-label",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))])],
                )
            ),
            probes=[probe(80, TCP, *ONLY_Y_TO_XA)],
        ),
    ),
    _case(
        "should enforce policy based on NamespaceSelector with MatchExpressions using default "
        "ns label",
        step(
            Create(
                netpol(
                    "allow-ns-y-match-selector-for-immutable-ns-label",
                    A,
                    egress=[egress_rule([peer(None, expr(NS_LABEL, "NotIn", "y"))])],
                )
            ),
            probes=[probe(80, TCP, expect_peer("x/a", "y", False))],
        ),
    ),
    # NetworkPolicy between server and client using UDP
    _case(
        "UDP: should support a 'default-deny-ingress' policy",
        step(Create(netpol("deny-all", match(), ingress=[])), probes=[probe(80, UDP, DENY_X)]),
    ),
    _case(
        "UDP: should enforce policy based on Ports",
        step(
            Create(
                netpol(
                    "allow-ingress-on-port-81-ns-x",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port(81, UDP)])],
                )
            ),
            probes=[probe(81, UDP, *ONLY_Y_TO_XA)],
        ),
    ),
    _case(
        "UDP: should enforce policy to allow traffic only from a pod in a different namespace "
        "based on PodSelector and NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-ns-y-pod-a-via-namespace-pod-selector",
                    A,
                    ingress=[rule([peer(A, ns_named("y"))])],
                )
            ),
            probes=[probe(80, UDP, all_ingress("x/a", False), expect_peer("y/a", "x/a", True))],
        ),
    ),
    # NetworkPolicy between server and client using SCTP
    _case(
        "SCTP: should support a 'default-deny-ingress' policy",
        step(Create(netpol("deny-all", match(), ingress=[])), probes=[probe(80, SCTP, DENY_X)]),
    ),
    _case(
        "SCTP: should enforce policy based on Ports",
        step(
            Create(
                netpol(
                    "allow-ingress-on-port-81-ns-x",
                    A,
                    ingress=[rule([peer(None, ns_named("y"))], [port(81, SCTP)])],
                )
            ),
            probes=[probe(81, SCTP, *ONLY_Y_TO_XA)],
        ),
    ),
    _case(
        "SCTP: should enforce policy to allow traffic only from a pod in a different namespace "
        "based on PodSelector and NamespaceSelector",
        step(
            Create(
                netpol(
                    "allow-ns-y-pod-a-via-namespace-pod-selector",
                    A,
                    ingress=[rule([peer(A, ns_named("y"))])],
                )
            ),
            probes=[probe(80, SCTP, all_ingress("x/a", False), expect_peer("y/a", "x/a", True))],
        ),
    ),
)
