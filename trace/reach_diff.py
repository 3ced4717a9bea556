"""`calicc diff`'s reachability section: what a change does to the cluster's intents and pods.

Both revisions of one rendered tree are traced (trace/revision.py puts each on disk and loads
it) with the questions of trace/sweep.py: every intent, matched by name, and every ordered pair
of the pods both pods files hold, on each container port of the destination and on a ping. The
section counts what was traced, names every file that does not load and every intent the trace
cannot answer, and lists (trace/reach_table.py) the intents and pod pairs whose verdict, path or
path MTU differ, old → new, and the intents added and removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from calicc.compiler.diff_facts import many
from calicc.compiler.diff_reach import ReachFiles
from calicc.compiler.gitdiff import Snapshot
from calicc.contract.errors import CaliccError
from calicc.trace.answer import Tracer
from calicc.trace.intents import Intent
from calicc.trace.reach_table import IntentRow, PairRow, intent_lines, pair_lines
from calicc.trace.revision import Revision, checked_out, load_revision
from calicc.trace.sweep import Result, ask_intent, ask_pair, pair_questions

MAX_PAIRS = 5000  # ordered pod pairs per revision; beyond, only the intents are traced


@dataclass
class PairAnswers:
    """The pod pair questions either revision answered, and notes about the pods."""

    rows: list[PairRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    traced: bool = True

    @property
    def pairs(self) -> int:
        """Return how many ordered pod pairs were traced."""
        return len({(r.question.src, r.question.dst) for r in self.rows})


def reach_lines(
    snaps: tuple[Snapshot, Snapshot],
    tree: str,
    files: tuple[ReachFiles | None, ...],
    *,
    pairs: bool = True,
) -> list[str]:
    """Return the Markdown lines of the tree's reachability section for two snapshots.

    `pairs`: whether to trace the pod pairs (not when the tree and pods file are the same).
    """
    with ExitStack() as stack:  # the trees are read while traced: kept until the end
        revisions = []
        for snap, found in zip(snaps, files, strict=True):
            wanted = [tree, *(found.named() if found is not None else ())]
            try:
                root = stack.enter_context(checked_out(snap, wanted))
            except CaliccError as exc:
                revisions.append(Revision(snap.label, None, False, None, [str(exc)]))
                continue
            revisions.append(load_revision(root, tree, found, snap.label))
        return section(revisions[0], revisions[1], files, pairs)


def section(
    old: Revision, new: Revision, files: Sequence[ReachFiles | None], traced: bool = True
) -> list[str]:
    """Trace both revisions (`traced`: the pod pairs too) and return the section's lines."""
    intents = compare_intents(old, new)
    pairs = compare_pairs(old, new) if traced else PairAnswers(traced=False)
    problems = [f"- cannot load in `{r.label}`: {p}" for r in (old, new) for p in r.problems]
    problems += [
        f"- cannot trace in `{label}`: {result.path}"
        for row in intents
        for label, result in ((old.label, row.old), (new.label, row.new))
        if result is not None and not result.traced
    ]
    notes = problems + pairs.notes
    parts = [part for part in (intent_lines(intents), pair_lines(pairs.rows)) if part]
    if not parts:
        parts = [["No intent and no pod pair changes verdict, path or path MTU."]]
    lines = [summary((old, new), files, intents, pairs)]
    for part in [notes, *parts] if notes else parts:
        lines += ["", *part]
    return lines


def _answers(revision: Revision) -> dict[str, tuple[Intent, Result]]:
    assert revision.cluster is not None
    assert revision.intents is not None
    tracer = Tracer(revision.cluster)
    return {
        i.name: (i, revision.plain(ask_intent(tracer, revision.cluster, i)))
        for i in revision.intents
    }


def compare_intents(old: Revision, new: Revision) -> list[IntentRow]:
    """Return every intent of either revision with its answers ([] when not comparable)."""
    if old.cluster is None or new.cluster is None or old.intents is None or new.intents is None:
        return []
    before, after = _answers(old), _answers(new)
    nothing: tuple[None, None] = (None, None)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        was, old_answer = before.get(name, nothing)
        now, new_answer = after.get(name, nothing)
        rows.append(IntentRow(name, was, now, old_answer, new_answer))
    return rows


def compare_pairs(old: Revision, new: Revision) -> PairAnswers:
    """Trace every pod pair question in both revisions; keep those either answered."""
    if old.cluster is None or new.cluster is None or not (old.pods_ok and new.pods_ok):
        return PairAnswers()
    keys = [{p.key for p in c.pods.pods} if c.pods else set() for c in (old.cluster, new.cluster)]
    found = PairAnswers(notes=pods_notes(keys[0], keys[1]))
    count = len(keys[0] & keys[1])
    if count * (count - 1) > MAX_PAIRS:
        found.notes.append(
            f"- pod pairs not traced: {count} pods make {count * (count - 1)} ordered pairs, "
            f"more than {MAX_PAIRS}"
        )
        return found
    tracers = (Tracer(old.cluster), Tracer(new.cluster))
    for question in pair_questions((old.cluster.pods, new.cluster.pods)):
        before = old.plain(ask_pair(tracers[0], old.cluster, question))
        after = new.plain(ask_pair(tracers[1], new.cluster, question))
        if before.traced or after.traced:
            found.rows.append(PairRow(question, before, after))
    return found


def pods_notes(before: set[str], after: set[str]) -> list[str]:
    """Return a bullet for the pods added, one for those removed (their pairs not compared)."""
    notes = []
    for what, keys in (("added", after - before), ("removed", before - after)):
        if keys:
            names = ", ".join(f"`{k}`" for k in sorted(keys))
            notes.append(f"- pods {what} (their pairs not compared): {names}")
    return notes


def summary(
    revisions: tuple[Revision, Revision],
    files: Sequence[ReachFiles | None],
    intents: Sequence[IntentRow],
    pairs: PairAnswers,
) -> str:
    """Return the section's first line: what was traced where, and how much."""
    named = sorted({path for f in files if f is not None for path in f.named()})
    with_files = f" with {', '.join(f'`{p}`' for p in named)}" if named else ""
    counts = []
    if any(f is not None and f.intents is not None for f in files):
        counts.append(many(sum(r.traced for r in intents), "intent"))
    if not pairs.traced:
        counts.append("no pod pair (the same tree and pods file in both)")
    elif any(f is not None and f.pods is not None for f in files):
        counts.append(
            f"{many(pairs.pairs, 'pod pair')} ({many(len(pairs.rows), 'question')}: "
            "each destination port and a ping)"
        )
    old, new = revisions
    traced = " and ".join(counts) or "nothing"
    return f"Traced in `{old.label}` and `{new.label}`{with_files}: {traced}."
