"""Truth tables of pod-to-pod reachability, built and printed as the upstream e2e suite does.

kubernetes/kubernetes test/e2e/network/netpol (reachability.go, truthtable.go): every pod of
namespaces x, y and z is a row (the client) and a column (the server). An expectation starts
all-connected, then edits set cells: `expect_peer(from, to, ok)` for every pair whose client
matches `from` and whose server matches `to`; a peer is "" (any pod), "x" (any pod of
namespace x), "*/a" (pod a of any namespace) or "x/a". `all_ingress(pod, ok)` and
`all_egress(pod, ok)` are upstream's ExpectAllIngress / ExpectAllEgress.

Loopback (a pod to itself) is ignored when tables are compared, as upstream does (its
semantics differ between network plugins: kubernetes/kubernetes#95879).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in POD_NAMES)
Table = Mapping[tuple[str, str], bool]


def peer_matches(peer: str, pod: str) -> bool:
    """Return whether peer text `peer` ("", "x", "*/a", "x/a") matches `pod` ("x/a").

    Examples:
        >>> [peer_matches(p, "x/a") for p in ("", "x", "y", "*/a", "*/b", "x/a")]
        [True, True, False, True, False, True]
    """
    namespace, _, name = peer.partition("/")
    pod_ns, _, pod_name = pod.partition("/")
    return namespace in ("", "*", pod_ns) and name in ("", pod_name)


@dataclass(frozen=True)
class Edit:
    """One expectation edit: every client matching `src` to every server matching `dst`."""

    src: str
    dst: str
    ok: bool


def expect_peer(src: str, dst: str, ok: bool) -> Edit:
    """Upstream's ExpectPeer (and Expect, when both are pods)."""
    return Edit(src, dst, ok)


def all_ingress(pod: str, ok: bool) -> Edit:
    """Upstream's ExpectAllIngress: every client to `pod`."""
    return Edit("", pod, ok)


def all_egress(pod: str, ok: bool) -> Edit:
    """Upstream's ExpectAllEgress: `pod` to every server."""
    return Edit(pod, "", ok)


def expected_table(edits: Iterable[Edit]) -> dict[tuple[str, str], bool]:
    """Return the table that starts all-connected and takes `edits` in order."""
    table = {(src, dst): True for src in PODS for dst in PODS}
    for edit in edits:
        for src, dst in table:
            if peer_matches(edit.src, src) and peer_matches(edit.dst, dst):
                table[src, dst] = edit.ok
    return table


def mismatches(expected: Table, observed: Table) -> list[tuple[str, str]]:
    """Return the (client, server) cells that differ, loopback left out."""
    return [
        (src, dst)
        for src in PODS
        for dst in PODS
        if src != dst and expected[src, dst] != observed[src, dst]
    ]


def render(table: Mapping[tuple[str, str], str]) -> str:
    """Return a table of cells as upstream prints it: a header of servers, a row per client."""
    lines = ["\t".join(["-", *PODS])]
    lines += ["\t".join([src, *(table[src, dst] for dst in PODS)]) for src in PODS]
    return "\n".join(lines)


def marks(table: Table) -> dict[tuple[str, str], str]:
    """Return a reachability table's cells: "." connected, "X" blocked (upstream's marks)."""
    return {cell: "." if ok else "X" for cell, ok in table.items()}


def diff_report(title: str, expected: Table, observed: Table) -> str:
    """Return upstream's report of a probe: expected, observed and their comparison.

    The comparison marks a matching cell ".", a differing one "X" and loopback "-".
    """
    wrong = set(mismatches(expected, observed))
    compare = {
        (src, dst): "-" if src == dst else ("X" if (src, dst) in wrong else ".")
        for src in PODS
        for dst in PODS
    }
    return "\n\n".join(
        [
            f"{title}: {len(wrong)} of {len(PODS) * (len(PODS) - 1)} wrong",
            f"expected:\n{render(marks(expected))}",
            f"observed:\n{render(marks(observed))}",
            f"comparison (X: wrong):\n{render(compare)}",
        ]
    )
