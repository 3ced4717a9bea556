"""`calicc lab down`: end the lab's processes by PID and delete its namespaces and files.

Works without the state file too (after a crash): processes are found as those living in the
lab's namespaces, namespaces by the lab's name prefix. The CNI servers that the pods' launchers
started on demand are asked to leave first (their socket removed). Daemons are signalled all at
once and waited for together; the namespaces go in one `ip -batch`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from calicc.agent.cni.server import server_running, stop_on_demand
from calicc.lab.agent import node_root
from calicc.lab.netns import NETNS_DIR
from calicc.lab.network import lab_namespaces, remove_namespaces
from calicc.lab.parallel import run_each
from calicc.lab.pods import delete_pods
from calicc.lab.procs import stop_pids
from calicc.lab.progress import Echo, Laps, quiet
from calicc.lab.state import LabState, load_state


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone meanwhile, or not ours to read
        return None
    return st.st_dev, st.st_ino


def namespace_pids(namespaces: list[str]) -> dict[str, list[int]]:
    """Return the PIDs living in each of `namespaces` (one pass over /proc, as `ip netns pids`)."""
    inodes = {ns: _inode(f"{NETNS_DIR}/{ns}") for ns in namespaces}
    wanted = {inode: ns for ns, inode in inodes.items() if inode is not None}
    found: dict[str, list[int]] = {ns: [] for ns in namespaces}
    for entry in sorted((e.name for e in os.scandir("/proc") if e.name.isdigit()), key=int):
        inode = _inode(f"/proc/{entry}/ns/net")
        ns = wanted.get(inode) if inode is not None else None
        if ns is not None:
            found[ns].append(int(entry))
    return found


def stop_cni_servers(root: Path) -> list[str]:
    """Ask every node's on-demand CNI server to leave; return a line per server stopped."""
    nodes = sorted(p.name for p in (root / "nodes").glob("*") if p.is_dir())

    def stop(node: str) -> bool:
        return server_running(node_root(root, node)) and stop_on_demand(node_root(root, node))

    stopped = run_each(nodes, stop, what="stopping CNI servers")
    return [f"stopped the CNI server of {n}" for n, yes in zip(nodes, stopped, strict=True) if yes]


def stop_recorded(state: LabState) -> list[str]:
    """Stop every process the state records (each checked by its command line)."""
    procs = sorted(state.procs.items())
    stopped = set(stop_pids([(p.pid, p.match) for _, p in procs]))
    return [f"stopped {key} (pid {p.pid})" for key, p in procs if p.pid in stopped]


def stop_strays(name: str) -> list[str]:
    """Stop whatever still lives in the lab's namespaces (a crash left it unrecorded)."""
    where = {pid: ns for ns, pids in namespace_pids(lab_namespaces(name)).items() for pid in pids}
    stopped = stop_pids([(pid, "") for pid in where])
    return [f"stopped pid {pid} found in {where[pid]}" for pid in stopped]


def lab_down(name: str, root: Path, progress: Echo = quiet) -> list[str]:
    """Remove lab `name`; return a line per thing removed (empty when nothing was left).

    `progress` gets a line with the seconds of each step (the CLI prints them on stderr).
    """
    laps = Laps(progress)
    done = []
    state = load_state(root)
    if state is not None:
        pods = delete_pods(state)
        done += pods + stop_cni_servers(root)
        laps.done(f"down: {len(pods)} pods deleted, CNI servers stopped")
        done += stop_recorded(state)
        laps.done(f"down: {len(state.procs)} recorded processes stopped")
    done += stop_strays(name)
    gone = remove_namespaces(name)
    done += [f"deleted namespace {ns}" for ns in gone]
    laps.done(f"down: {len(gone)} namespaces deleted")
    if root.exists():
        shutil.rmtree(root)
        done.append(f"removed {root}")
    return done
