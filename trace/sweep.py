"""The questions `calicc diff` asks both revisions, and each answer in the terms it compares.

A question is an intent (by name) or a pod pair on one port of the destination pod (its
container ports of the pods file, and a ping) in one IP family. An answer is a `Result`: the
verdict, the path in one short string (route kind, tunnel device, encapsulation, the BGP
sessions it is learned over, SNAT) and the path MTU; a question the trace cannot answer (an end
without an address of the family, say) has the verdict `not traced` and the error as its path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from calicc.trace.answer import Port, Trace, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.intents import Intent, contradiction, trace_intent
from calicc.trace.pods import PodsFile
from calicc.trace.route import Forward

FAMILIES = (4, 6)
NONE_ALLOWS = "none of these allows it"  # how trace/answer.py words a default deny
NO_POLICY = "no policy allows it"
NO_ANSWER = "not traced"


@dataclass(frozen=True)
class Result:
    """One answer, as compared: verdict, path and path MTU; `why` (who denied) is only shown.

    `why` names the policy that denied, or the hook on the node that dropped the packet. An
    intent's answer also says whether the intent holds (compared too: a changed `min_mtu`, say,
    can violate an intent whose path is the same).
    """

    verdict: str
    path: str
    mtu: int | None
    why: str = field(default="", compare=False)
    expectation: str = ""  # an intent's: "holds" or "violated: why"

    @property
    def traced(self) -> bool:
        """Return whether the trace answered (not an error)."""
        return self.verdict != NO_ANSWER


@dataclass(frozen=True, order=True)
class PairQuestion:
    """A packet from pod `src` to pod `dst` (`namespace/name` each) on `port`, of `family`."""

    src: str
    dst: str
    proto: str
    port: int | None
    family: int

    def port_text(self) -> str:
        """Return e.g. `TCP/8080`, `ping`, or `TCP/8080 IPv6`."""
        text = Port(self.proto, self.port).text()
        return text if self.family == FAMILIES[0] else f"{text} IPv{self.family}"


def path_text(route: Forward | None, trace: Trace) -> str:
    """Return the path a reviewer compares, e.g. `bgp via tunl0 (ipip), over Mesh_10_30_0_12`.

    The route's kind; its device unless the pod's own veth; its encapsulation; for a BGP route
    the sessions it is learned over (and the speakers it passes); SNAT when masqueraded.
    """
    if route is None:
        text = "from outside the cluster"
    else:
        text = route.kind
        if route.device is not None and route.kind != "local-pod":
            text += f" via {route.device}"
        if route.encapsulation != "none":
            text += f" ({route.encapsulation})"
        sessions = [
            learned.session.name + "".join(f" through {t}" for t in learned.through)
            for learned in route.learned
        ]
        if sessions:
            text += f", over {' or '.join(sessions)}"
    return text + (", SNAT" if trace.snat is not None else "")


def result_of(trace: Trace) -> Result:
    """Return the compared terms of one trace."""
    failed = next((c for c in trace.checks if not c.passed), None)
    why = ""
    if failed is not None and failed.policy is None:
        why = f"{failed.hook} on {failed.node}"
    elif failed is not None and failed.policy is not None:
        why = NO_POLICY if failed.policy.startswith(NONE_ALLOWS) else f"by {failed.policy}"
    return Result(trace.outcome, path_text(trace.route, trace), trace.path_mtu, why)


def no_answer(error: TraceError) -> Result:
    """Return the answer of a question the trace refuses (its message as the path)."""
    return Result(NO_ANSWER, str(error), None)


def ask_intent(tracer: Tracer, cluster: Cluster, intent: Intent) -> Result:
    """Trace one intent as `calicc build` does; say whether it holds (`expectation`)."""
    try:
        trace = trace_intent(intent, cluster, tracer)
    except TraceError as exc:
        return no_answer(exc)
    reason = contradiction(intent, trace)
    return replace(result_of(trace), expectation=f"violated: {reason}" if reason else "holds")


def ask_pair(tracer: Tracer, cluster: Cluster, question: PairQuestion) -> Result:
    """Trace one pod pair question (a node whose bundle does not load: not answered)."""
    try:
        src = cluster.resolve(question.src, question.family)
        dst = cluster.resolve(question.dst, question.family)
        return result_of(tracer.trace(src, dst, Port(question.proto, question.port)))
    except TraceError as exc:
        return no_answer(exc)


def pair_questions(pods: Iterable[PodsFile | None]) -> list[PairQuestion]:
    """Return every question about the pods of all the files (each pod in every one of them).

    Each ordered pair of two such pods, on each container port the destination has in any of
    the files and on a ping, in both IP families (a family an end lacks is not traced).
    """
    files = [p for p in pods if p is not None]
    if not files:
        return []
    keys = set.intersection(*({pod.key for pod in f.pods} for f in files))
    ports: dict[str, set[tuple[str, int | None]]] = {key: {("icmp", None)} for key in keys}
    for pods_file in files:
        for pod in pods_file.pods:
            if pod.key in keys:
                ports[pod.key] |= {(n.protocol.lower(), n.port) for n in pod.ports}
    return sorted(
        PairQuestion(src, dst, proto, port, family)
        for src in keys
        for dst in keys - {src}
        for proto, port in ports[dst]
        for family in FAMILIES
    )
