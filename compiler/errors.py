"""The project's error hierarchy, with messages meant for the person who wrote the input."""

from __future__ import annotations

from dataclasses import dataclass

from calicc.contract.errors import CaliccError

__all__ = ["CaliccError", "LockError", "Problem", "RenderError", "SpecError"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located as precisely as the source allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecError(CaliccError):
    """The cluster description (or a file it names) is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field, p.message))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the cluster description"
        super().__init__("\n".join([head + ":", *(f"  {p}" for p in self.problems)]))


class LockError(CaliccError):
    """The lock file would change under --frozen, or cannot be read."""


class RenderError(CaliccError):
    """A template failed to render; names the template and line."""
