"""Polling with a deadline: labs and tests wait for conditions, never for fixed times."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """A condition did not become true before its deadline."""


def poll(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    last: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None or False, and return that.

    Args:
        probe: the check; None or False means "not yet".
        timeout: seconds before giving up.
        what: the condition in words, for the error message.
        interval: seconds between probes.
        last: optional function describing the current state, added to the error.

    Raises:
        WaitTimeout: the deadline passed; the message names `what` and the last state.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            state = f"; last state:\n{last()}" if last else ""
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{state}")
        time.sleep(interval)
