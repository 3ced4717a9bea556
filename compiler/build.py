"""The build pipeline: load, validate, plan, render, then write (only when all succeeded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from calicc import __version__
from calicc.compiler.check import run_checks
from calicc.compiler.emit import INDEX, EmitReport, digest, dump_json
from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.host.build import attach_host, load_host
from calicc.compiler.host.load import LoadedHostPolicy
from calicc.compiler.load import Source, read_yaml
from calicc.compiler.lock_check import check_lock, moved_blocks
from calicc.compiler.lock_read import LockFile, LockProblems, read_lock
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.outdir import check_output_dir, scan_tree, writing
from calicc.compiler.plan import ClusterPlan, build_plan
from calicc.compiler.policy.cnp import compile_cluster_policies
from calicc.compiler.policy.load import AnyLoaded, load_policies
from calicc.compiler.policy.rules import compile_policies
from calicc.compiler.render import render_cluster, render_node
from calicc.compiler.render_keys import render_key
from calicc.compiler.spec_errors import problems_from
from calicc.compiler.uptodate import input_digest as files_digest
from calicc.compiler.write import check_frozen, write_build
from calicc.contract.assemble import assemble
from calicc.contract.manifest import (
    ClusterIndex,
    ClusterPolicy,
    ClusterSettings,
    NodeFile,
    NodeManifest,
)
from calicc.contract.names import (
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    MANIFEST,
    NODES_TABLE,
)
from calicc.contract.nodes_table import parse_table

LOCK_NAME = "cluster.lock.yaml"


@dataclass(frozen=True)
class Inputs:
    """A validated cluster description and where it came from."""

    spec: ClusterSpec
    source: Source
    files: tuple[Path, ...]
    host_policies: tuple[LoadedHostPolicy, ...] = ()
    policies: tuple[AnyLoaded, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Return the directory of the main input file (lock and rendered/ live there)."""
        return self.source.path.parent

    @property
    def lock_path(self) -> Path:
        """Return the lock file beside the input."""
        return self.base_dir / LOCK_NAME


def trace_files(spec: ClusterSpec, source: Source) -> tuple[tuple[Path, ...], list[Problem]]:
    """Return the pods and intents files the cluster names, or why each is refused.

    Like policy files they live beside the cluster file: relative, without '..', not a link
    out of its directory, and there. They are inputs of the build (intents are checked by it).
    """
    base = source.path.parent
    found, problems = [], []
    for key, rel in (("pods", spec.pods), ("intents", spec.intents)):
        if rel is None:
            continue
        path = base / rel
        parts = rel.replace("\\", "/").split("/")
        if (
            rel.startswith("/")
            or ".." in parts
            or not path.resolve().is_relative_to(base.resolve())
        ):
            reason = f"{rel!r} is not a file inside the cluster file's directory; write it relative"
            problems.append(
                source.problem((key,), f"{reason} to the cluster file, e.g. {key}.yaml")
            )
        elif not path.is_file():
            problems.append(
                source.problem((key,), f"{path} does not exist: write it or drop `{key}`")
            )
        else:
            found.append(path)
    return tuple(found), problems


def validate_source(source: Source, files: tuple[Path, ...]) -> Inputs:
    """Validate parsed data against the models and the semantic checks; raise every problem."""
    if not isinstance(source.data, dict):
        raise SpecError([source.problem((), "expected a mapping of cluster settings at the top")])
    try:
        spec = ClusterSpec.model_validate(source.data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, source, ClusterSpec)) from exc
    problems = run_checks(spec, source)
    policies: tuple[AnyLoaded, ...] = ()
    policy_files: tuple[Path, ...] = ()
    try:
        policies, policy_files = load_policies(spec.policies, source.path.parent, source)
    except SpecError as exc:
        problems = [*problems, *exc.problems]
    host_policies, host_problems = load_host(spec, source, policy_files)
    named, named_problems = trace_files(spec, source)
    problems = [*problems, *host_problems, *named_problems]
    if problems:
        raise SpecError(problems)
    return Inputs(
        spec=spec,
        source=source,
        files=(*files, *policy_files, *named),
        policies=policies,
        host_policies=host_policies,
    )


def load_cluster(path: Path) -> Inputs:
    """Read and validate a cluster.yaml."""
    return validate_source(read_yaml(path), (path,))


@dataclass(frozen=True)
class Compiled:
    """Everything a build produces, in memory."""

    plan: ClusterPlan
    files: dict[str, str]
    lock_text: str

    def node_manifest(self, node: str) -> NodeManifest:
        """Return node `node`'s complete manifest, assembled as the agent assembles it."""
        return assemble(
            NodeFile.model_validate_json(self.files[f"nodes/{node}/{MANIFEST}"]),
            ClusterIndex.model_validate_json(self.files[CLUSTER_INDEX]),
            ClusterSettings.model_validate_json(self.files[CLUSTER_SETTINGS]),
            ClusterPolicy.model_validate_json(self.files[CLUSTER_POLICY]),
            parse_table(self.files[NODES_TABLE]),
        )


def input_digest(inputs: Inputs) -> str:
    """Return a digest of every input file's bytes, in a stable order."""
    return files_digest(inputs.files)


def plan_locked(inputs: Inputs, reallocate: bool = False) -> tuple[ClusterPlan, LockFile]:
    """Return the plan of validated inputs and the lock it kept its allocations from.

    The lock is checked against the cluster first (shared blocks, tunnel addresses, MACs);
    then, unless `reallocate`, a remaining node that would lose a block is refused.
    """
    lock_file = read_lock(inputs.lock_path)
    problems = check_lock(lock_file, inputs.spec)
    if problems:
        raise LockProblems(problems)
    plan = build_plan(
        inputs.spec,
        lock_file.lock,
        compile_policies(inputs.policies),
        compile_cluster_policies(inputs.policies),
    )
    plan = attach_host(plan, inputs.host_policies, inputs.source)
    if not reallocate:
        moved = moved_blocks(lock_file, plan.lock, inputs.spec, plan.pools)
        if moved:
            raise LockProblems(moved)
    return plan, lock_file


def plan_cluster(inputs: Inputs, reallocate: bool = False) -> ClusterPlan:
    """Return the plan of validated inputs, allocations kept from the lock file."""
    return plan_locked(inputs, reallocate)[0]


def index_text(
    inputs: Inputs,
    plan: ClusterPlan,
    *,
    digests: dict[str, dict[str, str]],
    cluster_digests: dict[str, str],
    keys: dict[str, str],
    lock_text: str,
) -> str:
    """Return index.json: version, input and lock digests, and every file's digest.

    The cluster part's files and each node's; these are also the list of files calicc owns in
    the tree: a rebuild prunes only what the previous index.json lists. `node_inputs` holds
    each node's render key (compiler/render_keys.py): a rebuild renders only the nodes whose
    key changed.
    """
    return dump_json(
        {
            "calicc_version": __version__,
            "cluster": plan.name,
            "cluster_files": cluster_digests,
            "input_digest": input_digest(inputs),
            "lock_digest": digest(lock_text),
            "node_inputs": keys,
            "nodes": digests,
        }
    )


def compile_cluster(inputs: Inputs, reallocate: bool = False) -> Compiled:
    """Plan and render the whole cluster into memory (tests, validate, diff)."""
    plan = plan_cluster(inputs, reallocate)
    lock_text = plan.lock.to_yaml()
    files = dict(render_cluster(plan))
    cluster_digests = {rel: digest(text) for rel, text in sorted(files.items())}
    digests: dict[str, dict[str, str]] = {}
    for node in plan.nodes:
        rendered = render_node(plan, node)
        digests[node.name] = {rel: digest(text) for rel, text in sorted(rendered.items())}
        files.update({f"nodes/{node.name}/{rel}": text for rel, text in rendered.items()})
    keys = {node.name: render_key(plan, node) for node in plan.nodes}
    files[INDEX] = index_text(
        inputs,
        plan,
        digests=digests,
        cluster_digests=cluster_digests,
        keys=keys,
        lock_text=lock_text,
    )
    return Compiled(plan=plan, files=files, lock_text=lock_text)


def build(
    inputs: Inputs,
    out: Path,
    frozen: bool = False,
    check: bool = False,
    reallocate: bool = False,
) -> EmitReport:
    """Compile and write the lock and the rendered tree; nothing is written on any failure.

    `frozen` refuses a lock that would change or that is not the one the tree was built
    from; `reallocate` lets blocks that no longer fit their pool move (see lock_check.py).
    """
    plan, lock_file = plan_locked(inputs, reallocate)
    return write_planned(inputs, out, plan, lock_file, frozen=frozen, check=check)


def write_planned(
    inputs: Inputs,
    out: Path,
    plan: ClusterPlan,
    lock_file: LockFile,
    *,
    frozen: bool = False,
    check: bool = False,
    verify: Callable[[Path], None] | None = None,
) -> EmitReport:
    """Render and write a plan from plan_locked(), as build() does.

    For a caller that needs the plan too: the CLI checks bird_snippets against it before
    anything is written, and prints its warnings after.
    """
    lock_text = plan.lock.to_yaml()
    check_output_dir(out)
    state = scan_tree(out)
    if frozen:
        check_frozen(lock_file, plan.lock, lock_text, state, out)
    index = partial(index_text, inputs, plan, lock_text=lock_text)
    with writing(out):  # any OSError not named closer to its path
        return write_build(
            plan, out, state, lock_file=lock_file, lock_text=lock_text, index=index,
            check=check, verify=verify,
        )  # fmt: skip
