"""What one ansible-runner run said: progress lines, each bad host's reason, the run's own errors.

ansible-runner hands every event to `Progress`. A task result becomes one line per host and
task; a failed or unreachable one carries Ansible's message, which is also kept per host for the
summary table. What ansible-playbook prints outside any task (a playbook it cannot find, an
inventory it cannot parse, ansible-runner's "command was not found") is kept too: it is the
only account of a run that reached no host.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Echo = Callable[[str], None]
REASON_CHARS = 300  # a host's reason, on its progress and summary lines
RUN_ERROR_CHARS = 600  # ansible-playbook's own complaint about a run
OUTPUT_EVENTS = frozenset({"verbose", "error"})  # lines printed outside any task
EVENT_LABELS = {
    "runner_on_failed": "FAILED",
    "runner_on_unreachable": "UNREACHABLE",
    "runner_on_skipped": "skipped",
}


def flatten(text: str, limit: int) -> str:
    r"""Return `text` on one line, whitespace runs collapsed, at most `limit` characters.

    Examples:
        >>> flatten("no\n  space", 20)
        'no space'
        >>> flatten("abcdefgh", 7)
        'abcd...'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def apply_failures(stdout: object) -> list[str]:
    """Return the failed parts ("part: error") of a `calicc apply --json` report, if it is one.

    Examples:
        >>> apply_failures('{"failed": {"routes": "RTNETLINK: no such device"}}')
        ['routes: RTNETLINK: no such device']
        >>> apply_failures("plain text")
        []
    """
    if not isinstance(stdout, str) or not stdout.lstrip().startswith("{"):
        return []
    try:
        report = json.loads(stdout)
    except ValueError:
        return []
    failed = report.get("failed") if isinstance(report, dict) else None
    if not isinstance(failed, dict):
        return []
    return [f"{part}: {error}" for part, error in sorted(failed.items())]


def failure_reason(res: Mapping[str, Any]) -> str:
    """Return why a task failed or a host was unreachable, from the task's result.

    Ansible's `msg` first; then the failed parts of a `calicc apply --json` report on stdout,
    or else the command's (or module's) stderr. A looped task reports its first bad item.
    """
    bad = [
        item
        for item in res.get("results", [])
        if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable"))
    ]
    if bad:
        res = bad[0]
    details = apply_failures(res.get("stdout")) or [
        str(res.get("stderr") or res.get("module_stderr") or "")
    ]
    text = "; ".join(str(part) for part in [res.get("msg"), *details] if part)
    return flatten(text, REASON_CHARS) or "Ansible gave no message"


def run_error(output: Sequence[str], status: str, rc: int | None) -> str:
    """Return ansible-playbook's own account of a run, from the lines it printed outside tasks.

    Its error lines when there are any, else its warnings (an inventory it cannot parse is only
    a warning, and then no host matches), else whatever it printed: the first of them and the
    last three, then ansible-runner's status and return code.

    Examples:
        >>> run_error(["[ERROR]: the playbook: node.yml could not be found"], "failed", 1)
        '[ERROR]: the playbook: node.yml could not be found (ansible-runner: status failed, rc 1)'
    """
    errors = [line for line in output if line.startswith(("[ERROR]", "ERROR!"))]
    chosen = errors or [line for line in output if line.startswith("[WARNING]")] or list(output)
    picked = list(dict.fromkeys(chosen[:1] + chosen[-3:]))
    said = (
        flatten(" | ".join(picked), RUN_ERROR_CHARS) if picked else "ansible-playbook said nothing"
    )
    return f"{said} (ansible-runner: status {status}, rc {rc})"


def diff_lines(diff: object) -> list[str]:
    """Return a module's --diff result (one dict or a list of them) as unified diff lines."""
    lines: list[str] = []
    for part in diff if isinstance(diff, list) else [diff]:
        if not isinstance(part, Mapping):
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if isinstance(before, str) and isinstance(after, str):
            lines += difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                str(part.get("before_header", "before")),
                str(part.get("after_header", "after")),
                lineterm="",
            )
    return lines


class Progress:
    """ansible-runner event handler: a line per host and task result (and diffs), and a record.

    Attributes:
        reasons: host -> "task: why" of its first failed or unreachable task (ignored
            failures left out).
        output: the non-empty lines ansible-playbook printed outside any task.
    """

    def __init__(self, echo: Echo, batch: int, show_diff: bool = False) -> None:
        self.echo = echo
        self.batch = batch
        self.show_diff = show_diff
        self.reasons: dict[str, str] = {}
        self.output: list[str] = []

    def __call__(self, event: Mapping[str, Any]) -> bool:
        """Print a result event; return True so ansible-runner keeps every event."""
        name = event.get("event", "")
        data = event.get("event_data", {})
        res = data.get("res", {})
        if name in OUTPUT_EVENTS:
            lines = str(event.get("stdout", "")).splitlines()
            self.output += [line.strip() for line in lines if line.strip()]
            return True
        if self.show_diff and name in {"runner_on_ok", "runner_item_on_ok"} and res.get("changed"):
            for line in diff_lines(res.get("diff")):
                self.echo(line)
        if name == "runner_on_ok":
            label = "changed" if res.get("changed") else "ok"
        elif name in EVENT_LABELS:
            label = EVENT_LABELS[name]
        else:
            return True
        host, task = str(data.get("host", "?")), str(data.get("task", ""))
        line = f"[{self.batch}] {host}: {label}: {task}"
        if label in {"FAILED", "UNREACHABLE"}:
            reason = failure_reason(res)
            line += f" ({reason})"
            if data.get("ignore_errors"):
                line += " [ignored]"
            else:
                self.reasons.setdefault(host, f"{task}: {reason}")
        self.echo(line)
        return True
