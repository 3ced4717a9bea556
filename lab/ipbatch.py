"""Run `ip -batch` scripts: namespaces made and deleted in one process, wiring per namespace.

`ip -n NS -batch -` enters the namespace itself (no `ip netns exec`, so no mount namespace is
made), which is why a script per namespace costs a few milliseconds. Only the lab's own
namespaces are named; the root namespace's links, routes and addresses are never touched.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from calicc.lab.parallel import run_each
from calicc.lab.wiring import Script


class IpFailed(Exception):
    """An `ip -batch` run failed (the message names the namespace and quotes ip's error)."""


def _batch(args: Sequence[str], lines: Sequence[str], where: str) -> None:
    done = subprocess.run(
        ["ip", *args, "-batch", "-"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise IpFailed(f"ip -batch in {where} failed: {done.stderr.strip() or done.stdout.strip()}")


def add_namespaces(names: Sequence[str]) -> None:
    """Create the namespaces `names` (one ip process); stops at the first that fails."""
    if names:
        _batch([], [f"netns add {ns}" for ns in names], "the root namespace (netns add)")


def delete_namespaces(names: Sequence[str]) -> None:
    """Delete the namespaces `names` (one ip process; -force goes on past one that is gone)."""
    if names:
        _batch(["-force"], [f"netns delete {ns}" for ns in names], "netns delete")


def run_script(script: Script) -> None:
    """Run one script inside its namespace."""
    _batch(["-n", script.ns], script.lines, script.ns)


def run_stages(stages: Sequence[Sequence[Script]]) -> None:
    """Run each stage's scripts at once (one namespace each), the stages one after another."""
    for stage in stages:
        run_each(stage, run_script, name=lambda s: s.ns, what="ip -batch")
