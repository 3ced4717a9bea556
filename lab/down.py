"""`calicc lab down`: end the lab's processes by PID and delete its namespaces and files.

Works without the state file too (after a crash): processes are found as those living in the
lab's namespaces (`ip netns pids`), namespaces by the lab's name prefix. The CNI servers that
the pods' launchers started on demand are asked to leave first (their socket removed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from calicc.agent.cni.server import server_running, stop_on_demand
from calicc.lab.agent import node_root
from calicc.lab.network import lab_namespaces, remove_namespaces
from calicc.lab.pods import delete_pods
from calicc.lab.procs import alive, stop_pid
from calicc.lab.state import load_state


def namespace_pids(ns: str) -> list[int]:
    """Return the PIDs of processes living in namespace `ns`."""
    out = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
    ).stdout
    return sorted(int(p) for p in out.split() if p.isdigit())


def lab_down(name: str, root: Path) -> list[str]:
    """Remove lab `name`; return a line per thing removed (empty when nothing was left)."""
    done = []
    state = load_state(root)
    if state is not None:
        done += delete_pods(state)
        nodes = sorted(p.name for p in (root / "nodes").glob("*") if p.is_dir())
        for node in nodes:
            if server_running(node_root(root, node)) and stop_on_demand(node_root(root, node)):
                done.append(f"stopped the CNI server of {node}")
        for key, proc in sorted(state.procs.items()):
            if stop_pid(proc.pid, proc.match):
                done.append(f"stopped {key} (pid {proc.pid})")
    for ns in lab_namespaces(name):
        for pid in namespace_pids(ns):
            if alive(pid) and stop_pid(pid, must_contain=""):
                done.append(f"stopped pid {pid} found in {ns}")
    done += [f"deleted namespace {ns}" for ns in remove_namespaces(name)]
    if root.exists():
        shutil.rmtree(root)
        done.append(f"removed {root}")
    return done
