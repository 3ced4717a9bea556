"""Run the real node agent (`calicc apply --root`) inside each lab node's namespace.

The agent programs sysctls, links, ipsets, iptables, its own routes (blackholes of the node's
blocks) and starts BIRD under the node's root; the lab only records BIRD's PID for `down`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from calicc.contract.names import BIRD_CONFIG, install_path
from calicc.lab.netns import ns_run
from calicc.lab.state import Proc
from calicc.lab.wait import poll

WAIT_S = 15.0


class AgentFailed(Exception):
    """`calicc apply` failed on a lab node (the message holds its output)."""


def calicc_exe() -> str:
    """Return the calicc console script of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("calicc"))


def node_root(lab_root: Path, node: str) -> Path:
    """Return the directory the agent of `node` uses as its --root."""
    return lab_root / "nodes" / node / "root"


def apply_node(ns: str, bundle: Path, root: Path, standin: bool) -> str:
    """Run one `calicc apply` for a node inside its namespace; return its output.

    Raises:
        AgentFailed: the agent exited non-zero.
    """
    args = [calicc_exe(), "apply", "--bundle", str(bundle), "--root", str(root)]
    if standin:
        args.append("--allow-tunnel-standin")
    done = ns_run(ns, args, check=False)
    if done.returncode != 0:
        raise AgentFailed(f"calicc apply in {ns} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


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
