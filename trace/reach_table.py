"""The Markdown of `calicc diff`'s reachability changes: a table of intents, one of pod pairs.

A row shows a value once when it is the same in both revisions, `old → new` when it changed.
Pod pairs come verdict changes first, then path changes, then path MTU changes, at most
MAX_ROWS of them (the rest counted). Intents only in one revision are bullets (added, removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from calicc.trace.intents import Intent
from calicc.trace.sweep import PairQuestion, Result

MAX_ROWS = 50
ARROW = " → "


@dataclass(frozen=True)
class PairRow:
    """One pod pair question and its answer in the old and the new revision."""

    question: PairQuestion
    before: Result
    after: Result

    def rank(self) -> tuple[int, PairQuestion]:
        """Return the row's place: verdict changes first, then path, then path MTU."""
        before, after = self.before, self.after
        kind = 0 if before.verdict != after.verdict else 1 if before.path != after.path else 2
        return kind, self.question


@dataclass(frozen=True)
class IntentRow:
    """One intent (by name) in the old and new revision: None where it is not written."""

    name: str
    before: Intent | None
    after: Intent | None
    old: Result | None
    new: Result | None

    @property
    def traced(self) -> bool:
        """Return whether both revisions hold the intent and the trace answered both."""
        return self.old is not None and self.new is not None and self.old.traced and self.new.traced


def cell(before: str, after: str) -> str:
    """Return `before` when both are the same, else `before → after` (pipes escaped)."""
    text = before if before == after else f"{before}{ARROW}{after}"
    return text.replace("|", "\\|")


def mtu(result: Result) -> str:
    """Return the path MTU as shown ("-": none, e.g. a denied or refused packet)."""
    return str(result.mtu) if result.mtu is not None else "-"


def verdict(before: Result, after: Result) -> str:
    """Return the verdict cell; a changed verdict names who denies (the new side's, else old)."""
    text = cell(before.verdict, after.verdict)
    why = after.why or before.why
    if before.verdict != after.verdict and why:
        text += f" ({why})".replace("|", "\\|")
    return text


def results(before: Result, after: Result) -> str:
    """Return the verdict, path and path MTU cells of a row."""
    cells = (verdict(before, after), cell(before.path, after.path), cell(mtu(before), mtu(after)))
    return " | ".join(cells)


def intent_text(intent: Intent) -> str:
    """Return e.g. `demo/client → demo/nginx TCP/80, expect allow`."""
    return f"{intent.source}{ARROW}{intent.to} {intent.port.text()}, expect {intent.expect}"


def intent_lines(rows: Sequence[IntentRow]) -> list[str]:
    """Return the table of intents whose answer changed, then bullets of those added, removed."""
    changed = [r for r in rows if r.traced and r.old != r.new]
    lines = []
    if changed:
        lines += [
            "| intent | what | verdict | path | path MTU | expectation |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
    for row in changed:
        assert row.before is not None
        assert row.after is not None
        assert row.old is not None
        assert row.new is not None
        what = cell(intent_text(row.before), intent_text(row.after))
        holds = cell(row.old.expectation, row.new.expectation)
        lines.append(f"| `{row.name}` | {what} | {results(row.old, row.new)} | {holds} |")
    for row in rows:
        if row.before is None and row.after is not None and row.new is not None:
            now = intent_text(row.after)
            lines.append(f"- intent added: `{row.name}` ({now}): {_now(row.new)}")
        elif row.after is None and row.before is not None and row.old is not None:
            was = intent_text(row.before)
            lines.append(f"- intent removed: `{row.name}` ({was}): was {_now(row.old)}")
    return lines


def _now(result: Result) -> str:
    if not result.traced:
        return f"{result.verdict}: {result.path}"
    holds = f", {result.expectation}" if result.expectation else ""
    return f"{result.verdict}, {result.path}, path MTU {mtu(result)}{holds}"


def pair_lines(rows: Sequence[PairRow], limit: int = MAX_ROWS) -> list[str]:
    """Return the table of the pod pair questions whose answer changed, at most `limit` rows."""
    changed = sorted((r for r in rows if r.before != r.after), key=PairRow.rank)
    if not changed:
        return []
    lines = [
        "| from | to | port | verdict | path | path MTU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in changed[:limit]:
        q = row.question
        answers = results(row.before, row.after)
        lines.append(f"| `{q.src}` | `{q.dst}` | {q.port_text()} | {answers} |")
    if len(changed) > limit:
        lines += ["", f"… and {len(changed) - limit} more changed ({len(changed)} in all)."]
    return lines
