"""Write a compiled build: stage everything, then rename into place, then the lock.

Order matters for "nothing half-written". Every byte is written first: the nodes' changed
files into a staging directory beside the tree, and the lock into a temporary file beside
the lock. Those are the writes that can fail (disk full, a file-size limit, permissions);
when one does, the staging directory and the temporary lock are removed and nothing else was
touched. A caller's `verify` (the reachability intents) then reads the new tree as it will be
(a view of hard links: the staged files, else the tree's own) and may refuse it, with the
same result. Only then are files renamed into the tree, stale ones pruned, and the lock renamed
over the old one, last, so a tree is never newer than a lock that says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from calicc.compiler.emit import INDEX, EmitReport, digest, stage_beside
from calicc.compiler.errors import LockError
from calicc.compiler.lock import Lock
from calicc.compiler.lock_check import lock_changes
from calicc.compiler.lock_read import LockFile
from calicc.compiler.outdir import (
    TreeState,
    index_files,
    missing_dirs,
    prune,
    read_index,
    refuse_unsafe,
    writing,
)
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster
from calicc.compiler.stage import Job, stage_file, stage_nodes

IndexText = Callable[..., str]  # (digests=, cluster_digests=, keys=) -> index.json


def check_frozen(
    lock_file: LockFile, new: Lock, lock_text: str, state: TreeState, out: Path
) -> None:
    """Refuse (--frozen) a lock that would change, or that the tree was not built from."""
    path = lock_file.path
    if lock_file.digest != digest(lock_text):
        changes = lock_changes(lock_file.lock, new) or "its text is not what calicc writes"
        raise LockError(
            f"{path} would change (--frozen): {changes}. Run `calicc build` without --frozen "
            "and commit the lock file with the rendered tree"
        )
    built_from = state.index.get("lock_digest")
    if built_from is not None and built_from != lock_file.digest:
        raise LockError(
            f"{path} is not the lock {out / INDEX} was built from (--frozen): it was edited "
            "after the last build. Restore it from git, or run `calicc build` without "
            "--frozen and review the change"
        )


def _swap_in(out: Path, staging: Path, report: EmitReport, fresh: bool) -> None:
    """Move staged files into the tree (each rename atomic), then drop stale files.

    index.json moves last: should a rename fail halfway, the index still describes the old
    tree. A fresh tree (no output yet) is the staging directory itself, renamed in one step.
    """
    if fresh:
        with writing(out):
            if out.exists():
                out.rmdir()  # empty: scan_tree found nothing in it
            staging.chmod(0o755)
            os.replace(staging, out)
        return
    made: set[Path] = set()
    for rel in sorted(report.written, key=lambda rel: rel == INDEX):  # the index last
        target = out / rel
        with writing(target):
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            os.replace(staging / rel, target)
    prune(out, report.removed)


def _stage(job: Job, state: TreeState, index: IndexText) -> EmitReport:
    """Render and stage the cluster part, every node and the index; return what changes."""

    def cluster_part() -> tuple[dict[str, str], list[str]]:
        shared = render_cluster(job.plan)
        return shared, [rel for rel, text in sorted(shared.items()) if stage_file(job, rel, text)]

    results, (shared, written) = stage_nodes(job, cluster_part)  # the two side by side
    digests = {r.name: r.digests for r in results}
    written += [rel for r in results for rel in r.changed]
    shared_digests = {rel: digest(text) for rel, text in sorted(shared.items())}
    keys = {r.name: r.key for r in results}
    if stage_file(job, INDEX, index(digests=digests, cluster_digests=shared_digests, keys=keys)):
        written.insert(0, INDEX)
    expected = {INDEX, *shared} | {f"nodes/{r.name}/{rel}" for r in results for rel in r.digests}
    stale = state.listed - expected
    refuse_unsafe(state, job.out, expected | stale)
    return EmitReport(written=sorted(written), removed=sorted(stale & state.existing))


def _view(out: Path, staging: Path, report: EmitReport, where: Path) -> Path:
    """Return a directory under `where` holding the new tree as the swap will leave it.

    Its files are those the new index.json lists (staged, or the tree's own when unchanged):
    hard links to the staged file when staged, else to the tree's. A link that cannot be made
    (another file system) is a copy.
    """
    staged = set(report.written)
    index = staging / INDEX if INDEX in staged else out / INDEX
    files = index_files(read_index(index), index)
    view = Path(tempfile.mkdtemp(prefix=".calicc-view-", dir=where))
    for rel in sorted(files):
        source = staging / rel if rel in staged else out / rel
        target = view / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return view


def _verify(
    verify: Callable[[Path], None], job: Job, state: TreeState, report: EmitReport, where: Path
) -> None:
    """Run `verify` on the new tree: the staging directory itself when it holds all of it."""
    staging = job.staging
    assert staging is not None  # only staged builds are verified
    view = staging if _fresh(job, state) else _view(job.out, staging, report, where)
    try:
        verify(view)
    finally:
        if view != staging:
            shutil.rmtree(view, ignore_errors=True)


def _check_verified(
    job: Job, state: TreeState, index: IndexText, verify: Callable[[Path], None]
) -> EmitReport:
    """Compare (--check) and `verify` the new tree, staged in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="calicc-check-") as tmp:
        staging = Path(tmp) / "tree"
        staging.mkdir()
        staged = replace(job, staging=staging)
        report = _stage(staged, state, index)
        _verify(verify, staged, state, report, Path(tmp))
        return report


def previous_nodes(state: TreeState) -> dict[str, tuple[str, Mapping[str, str]]]:
    """Return {node: (render key, file digests)} from the previous index.json.

    An index from before render keys has none: every node is rendered.
    """
    keys, nodes = state.index.get("node_inputs"), state.index.get("nodes")
    if not isinstance(keys, dict) or not isinstance(nodes, dict):
        return {}
    return {
        name: (key, nodes[name])
        for name, key in keys.items()
        if isinstance(key, str) and isinstance(nodes.get(name), dict)
    }


def _cleanup(made: list[Path], staging: Path | None, lock_tmp: Path | None) -> None:
    if staging is not None and staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
    if lock_tmp is not None:
        lock_tmp.unlink(missing_ok=True)
    for directory in reversed(made):
        with contextlib.suppress(OSError):
            directory.rmdir()


def write_build(
    plan: ClusterPlan,
    out: Path,
    state: TreeState,
    *,
    lock_file: LockFile,
    lock_text: str,
    index: IndexText,
    check: bool = False,
    verify: Callable[[Path], None] | None = None,
) -> EmitReport:
    """Stage, then swap in the tree and the lock; `check` only compares.

    `verify` reads the new tree (a directory laid out as it will be) before anything is
    swapped in; its exception leaves the tree and the lock as they were. With `check` it reads
    the tree as a build would write it, staged in a temporary directory of its own.
    """
    relock = lock_file.digest != digest(lock_text)
    if check:  # with `verify`, staged where nothing of the tree's or the user's is written
        job = Job(plan, out, state.existing, staging=None, previous=previous_nodes(state))
        report = (
            _stage(job, state, index)
            if verify is None
            else _check_verified(job, state, index, verify)
        )
        if relock:
            report.written.insert(0, str(lock_file.path))
        return report
    made = missing_dirs(out.parent)
    staging = lock_tmp = None
    done = False
    try:
        with writing(out.parent):
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".calicc-stage-", dir=out.parent))
        job = Job(plan, out, state.existing, staging=staging, previous=previous_nodes(state))
        report = _stage(job, state, index)
        lock_tmp = stage_beside(lock_file.path, lock_text) if relock else None
        if verify is not None:
            _verify(verify, job, state, report, out.parent)
        _swap_in(out, staging, report, _fresh(job, state))
        if lock_tmp is not None:
            with writing(lock_file.path):
                os.replace(lock_tmp, lock_file.path)
        done = True
        return report
    finally:
        _cleanup([] if done else made, staging, None if done else lock_tmp)


def _fresh(job: Job, state: TreeState) -> bool:
    """Return whether the output holds nothing yet: the staging directory becomes the tree."""
    return not state.existing and not state.links and not _has_subdirs(job.out)


def _has_subdirs(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())
