"""The intents check of `calicc build`: trace every intent on the new tree before it is written.

compiler/write.py calls the verifier with a directory laid out as the new tree will be (the
staged files and the tree's own that stay); a violated intent raises IntentError, naming each
intent, what the trace found and the trace itself, and the build writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from calicc.trace.ends import Cluster
from calicc.trace.errors import IntentError
from calicc.trace.intents import Violation, check_intents, load_intents
from calicc.trace.pods import load_pods
from calicc.trace.report import as_text
from calicc.trace.view import TreeView


def intents_verifier(base_dir: Path, pods: str | None, intents: str) -> Callable[[Path], None]:
    """Return the check of the intents file `intents` (and pods file) beside the cluster file."""

    def verify(tree: Path) -> None:
        view = TreeView.open(tree)
        pods_file = load_pods(base_dir / pods, view.by_name) if pods is not None else None
        found = check_intents(load_intents(base_dir / intents), Cluster(view, pods_file))
        if found:
            raise IntentError(report(found))

    return verify


def report(violations: list[Violation]) -> str:
    """Return the message of a build refused by violated intents."""
    count = len(violations)
    lines = [f"{count} reachability intent{'s' if count != 1 else ''} violated; nothing written:"]
    for v in violations:
        lines.append(f"  {v.intent.text()} {v.intent.expect}: {v.reason}")
        lines += [f"    {line}" for line in as_text(v.trace).splitlines()]
    return "\n".join(lines)
