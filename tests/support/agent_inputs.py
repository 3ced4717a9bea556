"""Agent-side helpers of the hostile corpus: bundles broken on purpose, `calicc apply` run in a
throwaway namespace under the corpus's memory and time limits, and the namespace's state.

A bundle here starts as a self-contained copy of an example's rendered bundle (its cluster part
under cluster/); a case then edits node.json as raw JSON (wrong types, missing keys) or as bytes
(truncated, not UTF-8), or a listed file (a role's: the shared cluster file node.json names for
it), recomputing digests only where the case wants a consistent bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from calicc.agent.bundle import file_digest
from calicc.contract.names import CLUSTER_INDEX, is_cluster_file
from calicc.lab.netns import ns_run
from tests.support.bundles import bundle_files, role_source, write_tree
from tests.support.hostile import Outcome, Snapshot, run_calicc

MANIFEST = "node.json"


def copy_bundle(source: Path, target: Path) -> dict[str, Any]:
    """Copy a bundle to `target`, self-contained (its cluster part under cluster/); return its
    node.json as data."""
    write_tree(target, bundle_files(source))
    return dict(json.loads((target / MANIFEST).read_text()))


def write_manifest(bundle: Path, data: dict[str, Any]) -> None:
    """Write node.json as the compiler does (sorted keys, indented)."""
    (bundle / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def set_file(bundle: Path, data: dict[str, Any], rel: str, text: str) -> None:
    """Replace a listed file and its digest (the bundle stays consistent): in node.json for a
    node file, in cluster/index.json (and node.json, when it names it) for a cluster file; for
    a role, its source (the shared cluster file node.json names for it)."""
    rel = role_source(data, rel)
    (bundle / rel).write_text(text)
    if is_cluster_file(rel):
        index = json.loads((bundle / CLUSTER_INDEX).read_text())
        index["files"][rel]["digest"] = file_digest(text.encode())
        (bundle / CLUSTER_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if rel in data["files"]:
        data["files"][rel]["digest"] = file_digest(text.encode())
    write_manifest(bundle, data)


def snapshot_all(*roots: Path) -> Snapshot:
    """harness.snapshot's form, also for trees holding a FIFO (which it would block reading)."""
    found: Snapshot = {}
    for root in roots:
        paths = [root] if os.path.lexists(root) else []
        for directory, dirs, names in os.walk(root):
            paths += [Path(directory) / name for name in dirs + names]
        for path in paths:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[str(path)] = (mode, os.readlink(path).encode())
            else:
                found[str(path)] = (mode, _content(path) if stat.S_ISREG(mode) else b"")
    return found


def _content(path: Path) -> bytes:
    """Return a file's bytes, or a digest of them past 1 MiB (a sparse 1 GiB case file)."""
    if path.stat().st_size <= 2**20:
        return path.read_bytes()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest().encode()


def run_apply(ns: str, bundle: Path, root: Path, *extra: str) -> Outcome:
    """Run `calicc apply` in namespace `ns` as a user would, under the corpus's limits."""
    args = ["apply", "--bundle", str(bundle), "--root", str(root), "--allow-tunnel-standin"]
    return run_calicc([*args, *extra], cwd=root.parent, inside=("ip", "netns", "exec", ns))


def net_state(ns: str) -> dict[str, str]:
    """Return the namespace's links, routes, rules and sets (what an apply could change)."""
    commands = {
        "links": ["ip", "-d", "link", "show"],
        "routes": ["ip", "-4", "route", "show", "table", "all"],  # IPv6's come by themselves
        "neigh": ["ip", "neigh", "show", "nud", "permanent"],
        "iptables": ["iptables-save"],
        "ipsets": ["ipset", "save"],
    }
    state = {k: ns_run(ns, cmd).stdout for k, cmd in commands.items()}
    state["iptables"] = "\n".join(
        ln for ln in state["iptables"].splitlines() if not ln.startswith("#")
    )
    return state


def json_report(outcome: Outcome) -> dict[str, Any]:
    """Return the --json report an apply printed on stdout."""
    return dict(json.loads(outcome.stdout))
