"""One revision's side of `calicc diff`'s reachability section: its files on disk, then loaded.

A git revision's tree, pods file and intents file are written to a temporary directory (`git
archive` of only those paths, removed afterwards); the working tree is read in place. Loading
follows `calicc build`'s intents check (trace/build_check.py), except that a file that does not
load is a problem to report, not an exception: the diff still reports everything else.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from calicc.compiler.diff_reach import ReachFiles
from calicc.compiler.errors import SpecError
from calicc.compiler.gitdiff import Snapshot, git
from calicc.contract.errors import CaliccError
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.intents import Intent, load_intents
from calicc.trace.pods import PodsFile, load_pods
from calicc.trace.sweep import Result
from calicc.trace.view import TreeView


@contextmanager
def checked_out(snap: Snapshot, paths: Sequence[str]) -> Iterator[Path]:
    """Yield a directory holding `paths` (files or directories) as `snap` has them.

    The working tree is its own directory; a revision's files go to a temporary one.

    Raises:
        GitError: git cannot archive the paths at the revision.
        TraceError: tar cannot unpack them.
    """
    if snap.rev is None:
        yield snap.repo
        return
    archive = git(snap.repo, "archive", "--format=tar", snap.rev, "--", *paths)
    with tempfile.TemporaryDirectory(prefix="calicc-diff-") as tmp:
        unpack = subprocess.run(
            ["tar", "-x", "-C", tmp], input=archive, capture_output=True, check=False
        )
        if unpack.returncode != 0:
            raise TraceError(f"tar: {unpack.stderr.decode(errors='replace').strip()}")
        yield Path(tmp)


@dataclass(frozen=True)
class Shown:
    """Messages as a reviewer reads them: paths from the repository top, not the temp dir."""

    root: str

    def __call__(self, text: str) -> str:
        """Return `text` without the root directory's prefix."""
        return text.replace(self.root, "")

    def each(self, exc: CaliccError) -> list[str]:
        """Return one line per problem of a SpecError, else the error's message."""
        if isinstance(exc, SpecError):
            return [self(str(p)) for p in exc.problems]
        return [self(str(exc))]


@dataclass
class Revision:
    """One revision's cluster and intents, as far as they load, and what did not load.

    `cluster` is None when the tree does not load; `pods_ok` and `intents` say whether the pods
    and intents files loaded (no file: loaded, empty; a file the cluster file names wrongly:
    not loaded). `problems` are Markdown-free texts with
    paths from the repository top.
    """

    label: str
    cluster: Cluster | None
    pods_ok: bool
    intents: tuple[Intent, ...] | None
    problems: list[str] = field(default_factory=list)
    shown: Shown = field(default_factory=lambda: Shown(""))

    def plain(self, result: Result) -> Result:
        """Return `result` with the paths of an error's message from the repository top."""
        return result if result.traced else replace(result, path=self.shown(result.path))


def load_revision(root: Path, tree: str, files: ReachFiles | None, label: str) -> Revision:
    """Load the tree at `root`/`tree` with the pods and intents files `files` names."""
    shown = Shown(f"{root}/")
    problems = [files.problem] if files is not None and files.problem is not None else []
    try:
        view = TreeView.open(root / tree)
    except TraceError as exc:
        return Revision(label, None, False, None, [*problems, shown(str(exc))], shown)
    refused = files.refused if files is not None else frozenset()
    pods: PodsFile | None = None
    pods_ok = "pods" not in refused
    if files is not None and files.pods is not None:
        try:
            pods = load_pods(root / files.pods, view.by_name)
        except CaliccError as exc:
            pods_ok = False
            problems += shown.each(exc)
    intents: tuple[Intent, ...] | None = None if "intents" in refused else ()
    if files is not None and files.intents is not None:
        try:
            intents = load_intents(root / files.intents)
        except CaliccError as exc:
            intents = None
            problems += shown.each(exc)
    return Revision(label, Cluster(view, pods), pods_ok, intents, problems, shown)
