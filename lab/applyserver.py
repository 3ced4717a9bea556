"""Run many `calicc apply` commands from one interpreter: fork per node, enter its namespace.

`python -m calicc.lab.applyserver WORKERS` reads jobs, one JSON object a line, until stdin
closes: {"id", "ns", "argv", "log"}. It imports calicc's command line and the agent once, then
for each job forks a child that enters network namespace `ns` (setns), sends its output to
`log` and runs `calicc <argv>` exactly as the console script would; at most WORKERS children
run at once. As each child exits it prints {"id", "rc"} on stdout.

Why: a fresh interpreter spends most of a `calicc apply` importing (pydantic, pyroute2, the
agent); on 200 lab nodes that alone was minutes. A child of this process starts with all of it
loaded. It runs in the node's network namespace like `ip netns exec` would, without the mount
namespace `ip netns exec` adds for /sys (the agent reads /proc/sys and netlink, never /sys).
The server is single-threaded, so forking it is safe.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import sys
import traceback
from typing import Any, NoReturn

from calicc.cli import load_command, main
from calicc.lab.netns import NETNS_DIR

CLONE_NEWNET = 0x40000000
PRELOAD = ("calicc.agent.apply", "calicc.agent.bundle")  # what `calicc apply` imports lazily


def enter_netns(ns: str) -> None:
    """Move this (single-threaded) process into the named network namespace."""
    fd = os.open(f"{NETNS_DIR}/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def run_cli(argv: list[str]) -> int:
    """Run `calicc <argv>` as the console script does; return its exit code."""
    sys.argv = ["calicc", *argv]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def _redirect(log: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


def child(job: dict[str, Any]) -> NoReturn:
    """Run one job in this forked child and exit with its code (never returns)."""
    code = 1
    try:
        _redirect(job["log"])
        enter_netns(job["ns"])
        code = run_cli(list(job["argv"]))
    except BaseException:  # anything: exit code 1 and a traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve(jobs: list[dict[str, Any]], workers: int) -> None:
    """Fork a child per job, at most `workers` at once; print {"id", "rc"} as each exits."""
    pending = list(reversed(jobs))
    running: dict[int, str] = {}
    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop()
            sys.stdout.flush()  # a child must not inherit unwritten result lines
            pid = os.fork()
            if pid == 0:
                child(job)
            running[pid] = job["id"]
        pid, status = os.wait()
        ident = running.pop(pid)
        print(json.dumps({"id": ident, "rc": os.waitstatus_to_exitcode(status)}), flush=True)


def preload() -> None:
    """Load what every `calicc apply` needs, once, before any fork (the imports above too)."""
    for module in PRELOAD:
        importlib.import_module(module)
    command = load_command("apply")
    command.make_context("apply", ["--bundle", "/", "--root", "/"])  # warms typer's converters


def serve_stdin() -> None:
    """Read the jobs from stdin, then run them (the worker count is the one argument)."""
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    preload()
    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    serve(jobs, workers)


if __name__ == "__main__":
    serve_stdin()
