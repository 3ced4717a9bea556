"""Waiting in tests: poll a condition until it holds, else fail naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(check: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    """Poll `check` every 0.1 s for up to `limit` seconds; fail naming `what` if it never holds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")
