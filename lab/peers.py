"""Share every node's endpoint records with every other node, as a datastore would.

The agent reads other nodes' pods from `<state_dir>/peers/<node>/endpoints/*.json`
(agent/peers.py) when no Kubernetes API is configured; the lab has none, so after pods come
and go it mirrors each node's `<state_dir>/endpoints/` there. Files are written to a temporary
name and renamed, as agent/peers.py requires; records that vanished are removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from calicc.contract.names import STATE_DIR as NODE_STATE_DIR
from calicc.lab.agent import ApplyJob, apply_nodes, node_root
from calicc.lab.state import LabState
from calicc.lab.topology import Topology

STATE_DIR = Path(NODE_STATE_DIR.lstrip("/"))  # below a node's root


def mirror(source: Path, target: Path) -> None:
    """Make `target` hold exactly the `*.json` files of `source` (atomic per file).

    Nothing is made for a source without records (most nodes of a large lab have no pods).
    """
    wanted = {p.name: p for p in source.glob("*.json")} if source.is_dir() else {}
    if not wanted and not target.is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name, path in sorted(wanted.items()):
        data = path.read_bytes()
        dest = target / name
        if dest.exists() and dest.read_bytes() == data:
            continue
        tmp = target / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    for stale in target.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()


def lab_nodes(lab_root: Path) -> list[str]:
    """Return the nodes that have a root under the lab."""
    base = lab_root / "nodes"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def _listed(path: Path) -> set[str]:
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def share_endpoints(lab_root: Path, nodes: Iterable[str] | None = None) -> None:
    """Mirror each node's endpoint records into every other node's peers/ directory.

    An owner without records is mirrored only where a reader still holds its old ones (each
    reader's peers/ is listed once), so a 200-node lab with pods on 8 nodes mirrors 8 owners,
    not 40,000 pairs.
    """
    names = sorted(set(nodes if nodes is not None else lab_nodes(lab_root)))
    peers = {r: node_root(lab_root, r) / STATE_DIR / "peers" for r in names}
    held = {r: _listed(peers[r]) for r in names}
    for owner in names:
        records = node_root(lab_root, owner) / STATE_DIR / "endpoints"
        has_records = bool(_listed(records))
        for reader in names:
            if reader != owner and (has_records or owner in held[reader]):
                mirror(records, peers[reader] / owner / "endpoints")


def refresh_pod_nodes(state: LabState, topo: Topology) -> None:
    """Let each node with pods read the other nodes' records now, as its agent's loop would.

    The lab runs `calicc apply` once per node, not the agent's loop, so pods made after that
    apply are in their own node's policy sets only. Re-applying the nodes that have pods puts
    every pod in the selector sets of those nodes' endpoint chains, so a policy that selects a
    pod of another node matches it in the lab as it does in a cluster (and in `calicc trace`).
    """
    root = Path(state.root)
    share_endpoints(root)
    nodes = sorted({p.node for p in state.pods.values()})
    standin = state.tunnel == "ifb"
    rendered = root / "rendered" / "nodes"
    jobs = [ApplyJob(n, topo.node(n).ns, rendered / n, node_root(root, n), standin) for n in nodes]
    apply_nodes(jobs)
