"""Progress of a lab phase as plain lines: `nodes: 120/200 applied (34 s)`.

A phase that works through many nodes reports its count and elapsed seconds at most every few
seconds and once when it is complete; short phases print only the final line. Lines go to a
callable (the CLI sends them to stderr, tests pass nothing), so stdout stays deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Echo = Callable[[str], None]
EVERY_S = 3.0


def quiet(_line: str) -> None:
    """Print nothing (the default reporter of library callers and tests)."""


class Progress:
    """Counts the finished items of one phase and prints a line now and then (thread-safe)."""

    def __init__(
        self,
        subject: str,
        total: int,
        verb: str,
        echo: Echo = quiet,
        *,
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subject = subject
        self.total = total
        self.verb = verb
        self.echo = echo
        self.every = every
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.count = 0
        self.lock = threading.Lock()

    def line(self) -> str:
        """Return the current line, e.g. `nodes: 120/200 applied (34 s)`."""
        took = self.clock() - self.started
        return f"{self.subject}: {self.count}/{self.total} {self.verb} ({took:.0f} s)"

    def step(self, done: int = 1) -> None:
        """Count `done` more finished items; print when due or when the phase is complete."""
        with self.lock:
            self.count += done
            self._print(final=self.count >= self.total)

    def update(self, count: int, final: bool = False) -> None:
        """Set the count (it may go down again); print when due, or now when `final`."""
        with self.lock:
            self.count = count
            self._print(final)

    def _print(self, final: bool) -> None:
        now = self.clock()
        if final or now - self.last >= self.every:
            self.last = now
            self.echo(self.line())


class Laps:
    """Seconds per step of a command, for lines such as `check: 594 BGP rows (2 s)`."""

    def __init__(self, echo: Echo = quiet, clock: Callable[[], float] = time.monotonic) -> None:
        self.echo = echo
        self.clock = clock
        self.last = clock()

    def done(self, what: str) -> None:
        """Print `what` with the seconds since the previous step (or since the start)."""
        now = self.clock()
        self.echo(f"{what} ({now - self.last:.0f} s)")
        self.last = now
