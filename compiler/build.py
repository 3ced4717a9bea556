"""The build pipeline: load, validate, plan, render, then write (only when all succeeded)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from compiler import __version__
from compiler.check import run_checks
from compiler.emit import (
    EmitReport,
    digest,
    dump_json,
    emit,
    ensure_rendered_tree,
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


def compile_cluster(inputs: Inputs) -> Compiled:
    """Plan and render the whole cluster into memory."""
    plan = build_plan(inputs.spec, read_lock(inputs.lock_path), compile_policies(inputs.policies))
    files: dict[str, str] = {}
    index_nodes: dict[str, dict[str, str]] = {}
    for node in plan.nodes:
        rendered = render_node(plan, node)
        index_nodes[node.name] = {rel: digest(text) for rel, text in sorted(rendered.items())}
        files.update({f"nodes/{node.name}/{rel}": text for rel, text in rendered.items()})
    files["index.json"] = dump_json(
        {
            "calicc_version": __version__,
            "cluster": plan.name,
            "input_digest": input_digest(inputs),
            "nodes": index_nodes,
        }
    )
    return Compiled(plan=plan, files=files, lock_text=plan.lock.to_yaml())


def lock_changed(inputs: Inputs, lock_text: str) -> bool:
    """Return whether the lock file on disk differs from `lock_text`."""
    path = inputs.lock_path
    return not path.exists() or path.read_text(encoding="utf-8") != lock_text


def build(inputs: Inputs, out: Path, frozen: bool = False, check: bool = False) -> EmitReport:
    """Compile and write the lock and the rendered tree; nothing is written on any failure."""
    compiled = compile_cluster(inputs)
    relock = lock_changed(inputs, compiled.lock_text)
    if frozen and relock:
        raise LockError(
            f"{inputs.lock_path} would change (--frozen): run `calicc build` without --frozen "
            "and commit the lock file"
        )
    if check:
        report = emit(compiled.files, out, check=True)
        if relock:
            report.written.insert(0, str(inputs.lock_path))
        return report
    ensure_rendered_tree(out)
    if relock:
        write_atomic(inputs.lock_path, compiled.lock_text)
    return emit(compiled.files, out)
