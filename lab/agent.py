"""Run the real node agent (`calicc apply --root`) inside each lab node's namespace.

The agent programs sysctls, links, ipsets, iptables, its own routes (blackholes of the node's
blocks) and starts BIRD under the node's root; the lab only records BIRD's PID for `down`.
Many nodes are applied through one lab.applyserver process (a fork per node, so no node pays
for an interpreter's start-up); each node's output is kept in `<lab>/nodes/<node>/apply.log`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from calicc.contract.names import BIRD_CONFIG, install_path
from calicc.lab.netns import ns_run
from calicc.lab.progress import Progress
from calicc.lab.state import Proc
from calicc.lab.wait import poll

WAIT_S = 15.0
WORKERS = 4  # forked applies at once: each is CPU-bound Python plus iptables/ipset/BIRD
LOG_TAIL = 2000


class AgentFailed(Exception):
    """`calicc apply` failed on lab nodes (the message names each and holds its output)."""


def calicc_exe() -> str:
    """Return the calicc console script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("calicc"))


def node_root(lab_root: Path, node: str) -> Path:
    """Return the directory the agent of `node` uses as its --root."""
    return lab_root / "nodes" / node / "root"


@dataclass(frozen=True)
class ApplyJob:
    """One `calicc apply` of a node: its namespace, the bundle and the agent's root."""

    node: str
    ns: str
    bundle: Path
    root: Path
    standin: bool

    def argv(self) -> list[str]:
        """Return the calicc arguments (after the program name)."""
        args = ["apply", "--bundle", str(self.bundle), "--root", str(self.root)]
        return [*args, "--allow-tunnel-standin"] if self.standin else args

    @property
    def log(self) -> Path:
        """Return the file holding the output of the node's last apply."""
        return self.root.parent / "apply.log"


def apply_node(ns: str, bundle: Path, root: Path, standin: bool) -> str:
    """Run one `calicc apply` for a node inside its namespace; return its output.

    Raises:
        AgentFailed: the agent exited non-zero.
    """
    job = ApplyJob(root.parent.name, ns, bundle, root, standin)
    done = ns_run(ns, [calicc_exe(), *job.argv()], check=False)
    if done.returncode != 0:
        raise AgentFailed(f"calicc apply in {ns} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return text if len(text) <= LOG_TAIL else "..." + text[-LOG_TAIL:]


def apply_nodes(
    jobs: Sequence[ApplyJob], progress: Progress | None = None, workers: int = WORKERS
) -> None:
    """Apply every job through one lab.applyserver; every node runs even when one fails.

    Raises:
        AgentFailed: naming each node whose apply failed (in job order), with its output.
    """
    for job in jobs:
        job.log.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": j.node, "ns": j.ns, "argv": j.argv(), "log": str(j.log)}) for j in jobs
    ]
    server = [sys.executable, "-m", "calicc.lab.applyserver", str(workers)]
    codes: dict[str, int] = {}
    with subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:  # both are pipes, as asked
            raise AgentFailed("the apply server has no pipes")
        stdin.write("".join(f"{line}\n" for line in lines))
        stdin.close()
        for line in stdout:
            result = json.loads(line)
            codes[result["id"]] = int(result["rc"])
            if progress is not None:
                progress.step()
    failed = [j for j in jobs if codes.get(j.node) != 0]
    if failed:
        detail = "\n".join(
            f"{j.node} ({j.ns}): exit {codes.get(j.node, 'unknown: the apply server stopped')}\n"
            f"{_tail(j.log)}"
            for j in failed
        )
        raise AgentFailed(f"calicc apply failed on {len(failed)} of {len(jobs)} nodes:\n{detail}")


def agent_bird(root: Path) -> Proc | None:
    """Return the BIRD the agent started under `root` (PID from its pid file), if any."""
    pidfile = root / "var/run/calicc/bird.pid"
    sock = root / "var/run/calicc/bird.ctl"

    def read() -> int | None:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        return int(text) if text.isdigit() else None

    if not (root / install_path(BIRD_CONFIG)).exists():
        return None
    pid = poll(read, WAIT_S, f"BIRD pid file {pidfile}")
    return Proc(pid, str(sock))
