"""Writes the agent's CNI server makes after answering: one writer thread, latest write per key.

A dual-stack ADD or DEL answers before its ip6tables chains are written (agent/cni/
endpoint_policy.py). Each write queued here is the whole wanted state of one key (an
interface's chains, or their absence), so when several are queued only the latest of each key
counts, and the writer hands them over together, in the order their keys were last written,
to one `write` call: under a burst of pods one ip6tables-restore transaction serves many.

`submit` only queues; the server calls `run` once a connection is closed, so the writer never
competes with the answer it follows (for the GIL or a CPU). The thread lives while there is
work; it is not a daemon, so a server that exits finishes the queue first.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from calicc.agent.cni.errors import CniError

Value = TypeVar("Value")


class Later(Generic[Value]):
    """Queued writes keyed by name; `write` receives each batch as {key: value thunk}."""

    def __init__(self, write: Callable[[dict[str, Callable[[], Value]]], None]) -> None:
        self.enabled = False
        self.write = write
        self.lock = threading.Lock()
        self.pending: dict[str, Callable[[], Value]] = {}
        self.writer: threading.Thread | None = None

    def submit(self, key: str, value: Callable[[], Value]) -> None:
        """Queue `key`'s new state (computed by the writer); it replaces a queued one."""
        with self.lock:
            self.pending.pop(key, None)  # moves to the end: the batch keeps submission order
            self.pending[key] = value

    def run(self) -> None:
        """Start the writer on the queued writes unless it is running or nothing is queued."""
        with self.lock:
            if self.pending and self.writer is None:
                self.writer = threading.Thread(target=self._drain, name="calicc-later")
                self.writer.start()

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.pending:
                    self.writer = None
                    return
                batch, self.pending = self.pending, {}
            try:
                self.write(batch)
            except (CniError, OSError) as exc:
                print(f"calicc: {exc}; the agent's next reconcile writes it", file=sys.stderr)
            except Exception as exc:  # a bad write must not end the writer: the queue would stall
                print(f"calicc: deferred write failed: {exc!r}", file=sys.stderr)

    def wait(self) -> None:
        """Run the queue and return once every queued write is done (tests)."""
        self.run()
        while True:
            with self.lock:
                writer = self.writer
            if writer is None:
                return
            writer.join()
