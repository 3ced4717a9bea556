"""What an import could not carry over, and what it changed: one list, printed and written.

Each note names the resource (kind and name), the field and why. Three severities:
`unmapped` (a field or resource calicc has no equivalent for: review it by hand), `warning`
(a record left out, such as a stale block affinity) and `note` (what calicc added or chose).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UNMAPPED, WARNING, NOTE = "unmapped", "warning", "note"
SEVERITIES = (UNMAPPED, WARNING, NOTE)
TITLES = {
    UNMAPPED: "Not mapped (calicc has no equivalent: review by hand)",
    WARNING: "Warnings (records left out, pods that need new addresses)",
    NOTE: "Notes (what calicc added or chose)",
}


@dataclass(frozen=True)
class Note:
    """One line of the import report."""

    severity: str
    kind: str
    name: str
    field: str
    reason: str

    @property
    def order(self) -> tuple[int, str, str, str, str]:
        """Sort key: not mapped first, then left out, then notes; by kind, name and field."""
        return SEVERITIES.index(self.severity), self.kind, self.name, self.field, self.reason

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.severity}: {self.kind} {self.name}:{field} {self.reason}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(notes: Iterable[Note], summary: Iterable[str]) -> str:
    """Return import-report.md: a summary, then one table per severity (sorted, stable)."""
    ordered = sorted(set(notes), key=lambda n: n.order)
    lines = ["# calicc import report", "", *(f"- {line}" for line in summary), ""]
    for severity in SEVERITIES:
        rows = [n for n in ordered if n.severity == severity]
        lines += [f"## {TITLES[severity]}", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        lines += ["| kind | name | field | why |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(n.kind)} | {_cell(n.name)} | {_cell(n.field)} | {_cell(n.reason)} |"
            for n in rows
        ]
        lines.append("")
    return "\n".join(lines)
