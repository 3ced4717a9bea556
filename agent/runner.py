"""Every external command the agent runs goes through one Runner, which keeps a log.

The log is how tests and benchmarks prove that an idempotent apply ran no restore command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from calicc.agent import AgentError


@dataclass
class Runner:
    """Runs commands and records them; `writes` holds only the commands that change state."""

    reads: list[tuple[str, ...]] = field(default_factory=list)
    writes: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, args: Sequence[str], stdin: str | None = None, write: bool = False) -> str:
        """Run `args`, returning stdout; a failure raises AgentError with the tool's stderr.

        Args:
            args: the command line.
            stdin: text fed to the command (restore input).
            write: whether the command changes the node (counted in `writes`).
        """
        (self.writes if write else self.reads).append(tuple(args))
        try:
            done = subprocess.run(
                list(args), input=stdin, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as exc:
            raise AgentError(
                f"{args[0]} is not installed (needed to run {' '.join(args)})"
            ) from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise AgentError(f"`{' '.join(args)}` failed (exit {done.returncode}): {detail}")
        return done.stdout

    def count(self, *prefix: str) -> int:
        """Return how many write commands started with `prefix` (e.g. "ipset", "restore")."""
        return sum(1 for cmd in self.writes if cmd[: len(prefix)] == prefix)
