"""Ending processes the lab started: by PID only, after checking the PID is still ours."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from calicc.lab.wait import WaitTimeout, poll

STOP_WAIT_S = 5.0


def cmdline(pid: int) -> str:
    """Return the command line of `pid` with spaces between arguments, or "" if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def alive(pid: int) -> bool:
    """Return whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_pid(pid: int, must_contain: str) -> bool:
    """Send SIGTERM to `pid`, then SIGKILL if it lingers; return whether it was signalled.

    The process is left alone unless its command line contains `must_contain` (a path unique
    to the lab, such as a control socket or config file), so a recycled PID is never killed.
    """
    if not alive(pid) or must_contain not in cmdline(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        try:
            poll(lambda: not alive(pid), STOP_WAIT_S, f"process {pid} to exit")
        except WaitTimeout:
            os.kill(pid, signal.SIGKILL)
            poll(lambda: not alive(pid), STOP_WAIT_S, f"process {pid} to die")
    except ProcessLookupError:
        pass  # it ended by itself meanwhile
    return True


def stop_pids(procs: Sequence[tuple[int, str]]) -> list[int]:
    """Stop many processes at once: SIGTERM to each, one wait for all, SIGKILL to stragglers.

    Each (pid, must_contain) pair is checked as stop_pid checks it; returns the PIDs that were
    signalled, in the given order. Waiting once for all is what makes stopping 200 BIRDs take
    a moment instead of a poll per daemon.
    """
    ours = [pid for pid, must in procs if alive(pid) and must in cmdline(pid)]
    signalled = [pid for pid in ours if _signal(pid, signal.SIGTERM)]
    try:
        poll(lambda: not any(map(alive, signalled)), STOP_WAIT_S, "processes to exit")
    except WaitTimeout:
        for pid in filter(alive, signalled):
            _signal(pid, signal.SIGKILL)
        poll(lambda: not any(map(alive, signalled)), STOP_WAIT_S, "processes to die")
    return signalled


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False  # it ended by itself meanwhile
    return True


def spawn_detached(args: Sequence[str], log: Path) -> int:
    """Start `args` in the background, detached from this process (it outlives it); return its PID.

    Used by `calicc lab up`, whose daemons keep running after the command exits; output is
    appended to `log`.
    """
    script = '"$@" >>"$0" 2>&1 </dev/null & echo $!'
    done = subprocess.run(
        ["sh", "-c", script, str(log), *args], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())
