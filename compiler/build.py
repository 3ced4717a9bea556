"""The build pipeline: load, validate, plan, render, then write (only when all succeeded)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from compiler import __version__
from compiler.check import run_checks
from compiler.emit import (
    INDEX,
    EmitReport,
    digest,
    dump_json,
    ensure_rendered_tree,
    prune_empty_dirs,
    write_atomic,
)
from compiler.errors import LockError, SpecError
from compiler.load import Source, read_yaml
from compiler.lock import read_lock
from compiler.model.spec import ClusterSpec
from compiler.plan import ClusterPlan, build_plan
from compiler.policy.load import LoadedPolicy, load_policies
from compiler.policy.rules import compile_policies
from compiler.render import render_node
from compiler.spec_errors import problems_from
from compiler.stage import Job, stage_file, stage_nodes

LOCK_NAME = "cluster.lock.yaml"


@dataclass(frozen=True)
class Inputs:
    """A validated cluster description and where it came from."""

    spec: ClusterSpec
    source: Source
    files: tuple[Path, ...]
    policies: tuple[LoadedPolicy, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Return the directory of the main input file (lock and rendered/ live there)."""
        return self.source.path.parent

    @property
    def lock_path(self) -> Path:
        """Return the lock file beside the input."""
        return self.base_dir / LOCK_NAME


def validate_source(source: Source, files: tuple[Path, ...]) -> Inputs:
    """Validate parsed data against the models and the semantic checks; raise every problem."""
    if not isinstance(source.data, dict):
        raise SpecError([source.problem((), "expected a mapping of cluster settings at the top")])
    try:
        spec = ClusterSpec.model_validate(source.data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, source, ClusterSpec)) from exc
    problems = run_checks(spec, source)
    policies: tuple[LoadedPolicy, ...] = ()
    policy_files: tuple[Path, ...] = ()
    try:
        policies, policy_files = load_policies(spec.policies, source.path.parent, source)
    except SpecError as exc:
        problems = [*problems, *exc.problems]
    if problems:
        raise SpecError(problems)
    return Inputs(spec=spec, source=source, files=(*files, *policy_files), policies=policies)


def load_cluster(path: Path) -> Inputs:
    """Read and validate a cluster.yaml."""
    return validate_source(read_yaml(path), (path,))


@dataclass(frozen=True)
class Compiled:
    """Everything a build produces, in memory."""

    plan: ClusterPlan
    files: dict[str, str]
    lock_text: str


def input_digest(inputs: Inputs) -> str:
    """Return a digest of every input file's bytes, in a stable order."""
    sha = hashlib.sha256()
    for path in inputs.files:
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + sha.hexdigest()


def plan_cluster(inputs: Inputs) -> ClusterPlan:
    """Return the plan of validated inputs, allocations kept from the lock file."""
    return build_plan(inputs.spec, read_lock(inputs.lock_path), compile_policies(inputs.policies))


def index_text(inputs: Inputs, plan: ClusterPlan, digests: dict[str, dict[str, str]]) -> str:
    """Return index.json: calicc version, input digest and each node's file digests."""
    return dump_json(
        {
            "calicc_version": __version__,
            "cluster": plan.name,
            "input_digest": input_digest(inputs),
            "nodes": digests,
        }
    )


def compile_cluster(inputs: Inputs) -> Compiled:
    """Plan and render the whole cluster into memory (tests, validate, diff)."""
    plan = plan_cluster(inputs)
    files: dict[str, str] = {}
    digests: dict[str, dict[str, str]] = {}
    for node in plan.nodes:
        rendered = render_node(plan, node)
        digests[node.name] = {rel: digest(text) for rel, text in sorted(rendered.items())}
        files.update({f"nodes/{node.name}/{rel}": text for rel, text in rendered.items()})
    files[INDEX] = index_text(inputs, plan, digests)
    return Compiled(plan=plan, files=files, lock_text=plan.lock.to_yaml())


def lock_changed(inputs: Inputs, lock_text: str) -> bool:
    """Return whether the lock file on disk differs from `lock_text`."""
    path = inputs.lock_path
    return not path.exists() or path.read_text(encoding="utf-8") != lock_text


def _swap_in(out: Path, staging: Path, report: EmitReport, fresh: bool) -> None:
    """Move staged files into the tree (each rename atomic), then drop stale files.

    A fresh tree (no output yet) is the staging directory itself, renamed in one step.
    """
    if fresh:
        if out.exists():
            out.rmdir()  # empty: ensure_rendered_tree found no file in it
        staging.chmod(0o755)
        os.replace(staging, out)
        return
    made: set[Path] = set()
    for rel in report.written:
        target = out / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        os.replace(staging / rel, target)
    for rel in report.removed:
        (out / rel).unlink()
    if report.removed:
        prune_empty_dirs(out)


def _has_subdirs(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def build(inputs: Inputs, out: Path, frozen: bool = False, check: bool = False) -> EmitReport:
    """Compile and write the lock and the rendered tree; nothing is written on any failure.

    Nodes render on every core into a staging directory beside `out`; only when all of
    them succeeded are the changed files renamed into place and stale ones removed.
    """
    plan = plan_cluster(inputs)
    lock_text = plan.lock.to_yaml()
    relock = lock_changed(inputs, lock_text)
    if frozen and relock:
        raise LockError(
            f"{inputs.lock_path} would change (--frozen): run `calicc build` without --frozen "
            "and commit the lock file"
        )
    existing = frozenset(ensure_rendered_tree(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = None if check else Path(tempfile.mkdtemp(prefix=".calicc-stage-", dir=out.parent))
    try:
        job = Job(plan=plan, out=out, existing=existing, staging=staging)
        results = stage_nodes(job)
        digests = {r.name: r.digests for r in results}
        written = [rel for r in results for rel in r.changed]
        if stage_file(job, INDEX, index_text(inputs, plan, digests)):
            written.insert(0, INDEX)
        expected = {INDEX} | {f"nodes/{r.name}/{rel}" for r in results for rel in r.digests}
        report = EmitReport(written=sorted(written), removed=sorted(existing - expected))
        if check:
            if relock:
                report.written.insert(0, str(inputs.lock_path))
            return report
        if relock:
            write_atomic(inputs.lock_path, lock_text)
        assert staging is not None
        _swap_in(out, staging, report, fresh=not existing and not _has_subdirs(out))
        return report
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
