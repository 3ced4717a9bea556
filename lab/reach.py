"""`lab check`'s reachability rows: what `calicc trace` says, against the lab's real packets.

Every ordered pair of the lab's pods (its own and the pods file's: lab/filepods.py), in each
address family both have, on a ping and on each of the destination's named container ports,
is traced (trace/answer.py on the lab's rendered tree, with the pods at the addresses CNI gave
them) and probed (lab/reach_probe.py). A pair agrees when its packets went through exactly when
the trace says allowed. A pair that disagrees is probed twice more, a second apart, before it
is a failure; one the lab cannot carry (IPIP over the stand-in tunl0, or across subnets without
a fabric: lab/matrix.py) is skipped. One row counts the pairs; each disagreement is a row.

Then each intent of the cluster's intents file is a row: it passes when the trace holds the
intent (trace/intents.py) and the packets agree with the trace. Its ends may be pods, nodes or
the lab's external host.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.build import load_cluster
from calicc.lab.filepods import write_lab_pods
from calicc.lab.matrix import Paths
from calicc.lab.reach_probe import CONNECTED, Shot, fire, servers
from calicc.lab.state import LabState
from calicc.lab.topology import EXTERNAL_HOST, EXTERNAL_HOST_V6
from calicc.lab.verify import FAIL, PASS, SKIP, Row
from calicc.trace.answer import Port, Trace, Tracer
from calicc.trace.ends import Cluster, End
from calicc.trace.intents import Intent, contradiction, load_intents, trace_intent
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView

AGREEMENT, INTENT = "trace", "intent"
TRIES = 3  # a disagreeing probe is tried again (an agent may still be writing a pod's chains)
RETRY_S = 1.0
PING = Port("icmp", None)


@dataclass(frozen=True)
class Question:
    """One packet to trace and send: the trace's answer, the probe, or why it cannot run."""

    subject: str
    trace: Trace
    shot: Shot | None
    serve: tuple[str, str, int] | None  # (namespace, proto, port) the destination must serve
    skip: str = ""


def reach_rows(state: LabState, paths: Paths) -> list[Row]:
    """Return the trace agreement rows and the intent rows of the running lab."""
    root = Path(state.root)
    view = TreeView.open(root / "rendered")
    cluster = Cluster(view, load_pods(write_lab_pods(state), view.by_name))
    tracer = Tracer(cluster)
    pairs = pair_questions(state, paths, cluster, tracer)
    intents = _intents(state)
    asked = [intent_question(i, state, paths, cluster, tracer) for i in intents]
    answers = ask([*pairs, *asked], root / "run")
    rows = agreement_rows(pairs, answers[: len(pairs)])
    for intent, question, word in zip(intents, asked, answers[len(pairs) :], strict=True):
        rows.append(intent_row(intent, question, word))
    return rows


def _intents(state: LabState) -> tuple[Intent, ...]:
    inputs = load_cluster(Path(state.cluster))
    if inputs.spec.intents is None:
        return ()
    return load_intents(inputs.base_dir / inputs.spec.intents)


def pair_questions(
    state: LabState, paths: Paths, cluster: Cluster, tracer: Tracer
) -> list[Question]:
    """Return a question per ordered pod pair, family and port (a ping, each named port)."""
    pods = sorted(state.pods.values(), key=lambda p: p.key)
    found = []
    for version in paths.families():
        for a in pods:
            src_addr = a.address_of(version)
            if not src_addr:
                continue
            src = cluster.resolve(a.key, version)
            for b in pods:
                dst_addr = b.address_of(version)
                if b is a or not dst_addr:
                    continue
                dst = cluster.resolve(b.key, version)
                skip = paths.skip_reason(a.node, src_addr, b.node, dst_addr, False)
                ports = [PING, *(Port(proto.lower(), n) for _, n, proto in b.ports)]
                for port in ports:
                    trace = tracer.trace(src, dst, port)
                    subject = f"{a.key} -> {b.key} {port.text()} (IPv{version})"
                    shot = Shot(a.netns, dst_addr, port.proto, port.port)
                    serve = (b.netns, port.proto, port.port) if port.port is not None else None
                    found.append(Question(subject, trace, shot, serve, skip))
    return found


def intent_question(
    intent: Intent, state: LabState, paths: Paths, cluster: Cluster, tracer: Tracer
) -> Question:
    """Return the question of one intent: its trace and where its packet starts and ends."""
    trace = trace_intent(intent, cluster, tracer)
    src_ns, dst_ns = _namespace(trace.src, state, paths), _namespace(trace.dst, state, paths)
    subject = intent.text()
    missing = [e.text() for e, ns in ((trace.src, src_ns), (trace.dst, dst_ns)) if ns is None]
    if src_ns is None or dst_ns is None:
        return Question(subject, trace, None, None, f"no lab namespace holds {missing[0]}")
    port = intent.port
    shot = Shot(src_ns, str(trace.dst.address), port.proto, port.port)
    serve = (dst_ns, port.proto, port.port) if port.port is not None else None
    src_node, dst_node = trace.src.node, trace.dst.node
    skip = ""
    if src_node is not None and dst_node is not None:
        from_node = trace.src.kind == "node"
        skip = paths.skip_reason(
            src_node.name, str(trace.src.address), dst_node.name, str(trace.dst.address), from_node
        )
    return Question(subject, trace, shot, serve, skip)


def _namespace(end: End, state: LabState, paths: Paths) -> str | None:
    """Return the lab namespace that holds `end`'s address, or None."""
    if end.kind == "pod" and end.pod is not None:
        pod = next((p for p in state.pods.values() if p.key == end.pod.key), None)
        return pod.netns if pod is not None else None
    if end.kind == "node" and end.node is not None:
        return paths.topo.node(end.node.name).ns
    if end.address in (EXTERNAL_HOST.ip, EXTERNAL_HOST_V6.ip):
        return paths.topo.external_ns
    return None


def ask(questions: Sequence[Question], run_dir: Path) -> list[str]:
    """Probe every question that can run; return a word each ("" for a skipped one).

    A probe that disagrees with its trace is tried again, up to TRIES in all.
    """
    wanted: dict[str, set[tuple[str, int]]] = {}
    for q in questions:
        if q.serve is not None and not q.skip:
            ns, proto, port = q.serve
            wanted.setdefault(ns, set()).add((proto, port))
    words = [""] * len(questions)
    with servers(wanted, run_dir) as unserved:
        todo = [i for i, q in enumerate(questions) if q.shot is not None and not q.skip]
        for i in todo:
            serve = questions[i].serve
            if serve is not None and serve in unserved:
                words[i] = f"not served: {unserved[serve]}"
        todo = [i for i in todo if not words[i]]
        for attempt in range(TRIES):
            if attempt:
                time.sleep(RETRY_S)
            shots = [questions[i].shot for i in todo]
            for i, word in zip(todo, fire([s for s in shots if s is not None]), strict=True):
                words[i] = word
            todo = [i for i in todo if _agrees(questions[i].trace, words[i]) is False]
            if not todo:
                break
    return words


def _agrees(trace: Trace, word: str) -> bool | None:
    """Return whether the packets did what the trace says (None: the probe proved nothing)."""
    if word.startswith(("not served", "error")) or not word:
        return None
    return (word == CONNECTED) == trace.allowed


def agreement_rows(questions: Sequence[Question], words: Sequence[str]) -> list[Row]:
    """Return the count row, then a row for each pair whose packets disagree with the trace."""
    failed, agreed, skipped = [], 0, 0
    for q, word in zip(questions, words, strict=True):
        verdict = _agrees(q.trace, word)
        if q.skip or verdict is None:
            skipped += 1
        elif verdict:
            agreed += 1
        else:
            said = f"trace: {q.trace.outcome}"
            failed.append(Row(AGREEMENT, q.subject, said, word, FAIL))
    total = len(questions)
    if not total:
        return []
    counted = f"{agreed} of {total} agreed, {len(failed)} disagreed, {skipped} skipped"
    status = FAIL if failed else PASS if agreed else SKIP
    summary = Row(AGREEMENT, "every pod pair and port", "packets as traced", counted, status)
    return [summary, *failed]


def intent_row(intent: Intent, question: Question, word: str) -> Row:
    """Return the row of one intent: the trace must hold it and the packets agree."""
    trace = question.trace
    expected = f"{intent.expect} (trace: {trace.outcome})"
    wrong = contradiction(intent, trace)
    if wrong is not None:
        return Row(INTENT, question.subject, expected, f"the trace contradicts it: {wrong}", FAIL)
    verdict = _agrees(trace, word)
    if question.skip or verdict is None:
        return Row(INTENT, question.subject, expected, question.skip or word, SKIP)
    if not verdict:
        return Row(INTENT, question.subject, expected, f"{word}: the lab disagrees", FAIL)
    return Row(INTENT, question.subject, expected, word, PASS)
