"""Run one job per lab node (or namespace) several at a time, and name every one that failed.

The lab's work is mostly subprocesses (`ip`, `calicc apply`, `birdc`, `ping`), so threads are
enough to keep both cores busy. Every job runs even when another failed: `up` records what each
node started before it reports the failures, and `down` removes everything it can.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from calicc.lab.progress import Progress

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Return how many jobs run at once: a few per core, since jobs mostly wait on processes."""
    return 4 * (os.cpu_count() or 1)


class JobsFailed(Exception):
    """Some jobs of a phase failed; `failures` maps each failed item's name to its error."""

    def __init__(self, what: str, total: int, failures: dict[str, BaseException]) -> None:
        self.what = what
        self.failures = failures
        lines = [f"{what} failed for {len(failures)} of {total}:"]
        lines += [f"{name}: {error}" for name, error in failures.items()]
        super().__init__("\n".join(lines))


def run_each(
    items: Sequence[T],
    job: Callable[[T], R],
    *,
    name: Callable[[T], str] = str,
    what: str = "job",
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[R]:
    """Run `job` on every item, `workers` at once; return the results in the items' order.

    Args:
        items: what to work on (nodes, namespaces, probes).
        job: the work for one item; an exception fails that item only.
        name: how an item is named in the error (default: str).
        what: the phase in words, for the error ("calicc apply").
        workers: jobs at once (default: default_workers()).
        progress: counted once per finished item, failed or not.

    Raises:
        JobsFailed: after every item ran, naming each failed item (in the items' order) and
            its error; the first error is its cause.
    """
    results: dict[int, R] = {}
    errors: dict[int, BaseException] = {}

    def one(index: int) -> None:
        try:
            results[index] = job(items[index])
        except Exception as exc:  # reported per item below
            errors[index] = exc
        finally:
            if progress is not None:
                progress.step()

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        list(pool.map(one, range(len(items))))
    if errors:
        failures = {name(items[i]): errors[i] for i in sorted(errors)}
        raise JobsFailed(what, len(items), failures) from errors[min(errors)]
    return [results[i] for i in range(len(items))]
