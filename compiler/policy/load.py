"""Find, parse and validate the policy files a cluster.yaml lists.

Files are YAML streams (several documents separated by `---`), and a document may be a
`kind: List` whose `items` are policies. A document is a NetworkPolicy (networking.k8s.io/v1)
or a ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2), told apart by apiVersion and
kind. Every problem names its file, line and field, and all problems of all files are reported
together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.host.load import is_host_document
from calicc.compiler.load import Loc, Source, parse_yaml_documents, read_input
from calicc.compiler.policy.check import check_policy
from calicc.compiler.policy.cnp_model import API_VERSION as CNP_API_VERSION
from calicc.compiler.policy.cnp_model import ClusterNetworkPolicy
from calicc.compiler.policy.model import NetworkPolicy
from calicc.compiler.spec_errors import problems_from
from calicc.contract.text import CONTROL, cut

P = TypeVar("P", NetworkPolicy, ClusterNetworkPolicy)


@dataclass(frozen=True)
class Loaded(Generic[P]):
    """A validated policy and where it was written (to locate later problems)."""

    policy: P
    source: Source
    loc: Loc

    def problem(self, loc: Loc, message: str) -> Problem:
        """Build a Problem at `loc` inside this policy's document."""
        return self.source.problem((*self.loc, *loc), message)

    @property
    def origin(self) -> str:
        """Return `file:line` of the policy's document, for comments in rendered files."""
        line, _ = self.source.position(self.loc)
        return f"{self.source.path.name}:{line}"


LoadedPolicy = Loaded[NetworkPolicy]
LoadedCnp = Loaded[ClusterNetworkPolicy]
AnyLoaded = LoadedPolicy | LoadedCnp
MAX_POLICY_FILES = 10_000


def _pattern_problem(pattern: str) -> str | None:
    """Why a policy path or glob is refused: policies live beside the cluster file."""
    parts = pattern.replace("\\", "/").split("/")
    if not pattern.strip() or pattern.startswith("/") or ".." in parts:
        return (
            f"{cut(pattern)!r} is not a path or glob inside the cluster file's directory; "
            "write it relative to the cluster file without '..', e.g. policies/*.yaml"
        )
    if CONTROL.search(pattern):
        return "a policy path holds no control characters"
    return None


def _inside(path: Path, base_dir: Path) -> bool:
    return path.resolve().is_relative_to(base_dir.resolve())


def expand_globs(
    patterns: Sequence[str], base_dir: Path, cluster: Source
) -> tuple[tuple[Path, ...], list[Problem]]:
    """Return the files matching `patterns` (relative to `base_dir`), sorted and unique.

    A pattern may not leave `base_dir` (absolute, '..', or a symbolic link pointing out), so a
    cluster file under review cannot make the compiler read, and echo, files elsewhere.
    """
    files: set[Path] = set()
    problems = []
    for index, pattern in enumerate(patterns):
        refused = _pattern_problem(pattern)
        found = [] if refused else sorted(p for p in base_dir.glob(pattern) if p.is_file())
        outside = [p for p in found if not _inside(p, base_dir)]
        if outside:
            refused = f"{outside[0]} links outside the cluster file's directory"
        elif not refused and not found:
            refused = (
                f"{cut(pattern)!r} matches no file under {base_dir}; give a path or glob "
                "relative to the cluster file, e.g. policies/*.yaml"
            )
        if refused:
            problems.append(cluster.problem(("policies", index), refused))
        files.update(found)
    if len(files) > MAX_POLICY_FILES:
        message = f"the patterns match {len(files)} files; at most {MAX_POLICY_FILES} are read"
        return (), [*problems, cluster.problem(("policies",), message)]
    return tuple(sorted(files)), problems


OLD_KINDS = {
    "AdminNetworkPolicy": "a ClusterNetworkPolicy with tier: Admin",
    "BaselineAdminNetworkPolicy": "a ClusterNetworkPolicy with tier: Baseline",
}


def _model_of(data: dict[object, object]) -> type[NetworkPolicy] | type[ClusterNetworkPolicy]:
    """Return the model a document is validated with: by kind, else by apiVersion."""
    if data.get("kind") == "ClusterNetworkPolicy" or data.get("apiVersion") == CNP_API_VERSION:
        return ClusterNetworkPolicy
    return NetworkPolicy


def _validate(
    source: Source, loc: Loc, data: dict[object, object]
) -> tuple[AnyLoaded | None, list[Problem]]:
    sub = Source(
        path=source.path,
        data=data,
        lines={k[len(loc) :]: v for k, v in source.lines.items() if k[: len(loc)] == loc},
    )
    kind = data.get("kind")
    if isinstance(kind, str) and kind in OLD_KINDS:
        message = (
            f"{kind} (policy.networking.k8s.io/v1alpha1) is not read; write it as "
            f"{OLD_KINDS[kind]} ({CNP_API_VERSION})"
        )
        return None, [source.problem((*loc, "kind"), message)]
    model = _model_of(data)
    try:
        policy = model.model_validate(data)
    except ValidationError as exc:
        return None, problems_from(exc, sub, model)
    if isinstance(policy, ClusterNetworkPolicy):
        return LoadedCnp(policy, source, loc), []
    loaded = LoadedPolicy(policy, source, loc)
    return loaded, list(check_policy(policy, loaded.problem))


def _documents(source: Source) -> list[tuple[Loc, object]]:
    data = source.data
    if isinstance(data, dict) and data.get("kind") == "List":
        items = data.get("items")
        if not isinstance(items, list):
            return [(("items",), None)]
        return [(("items", i), item) for i, item in enumerate(items)]
    return [((), data)]


def load_policy_file(path: Path) -> tuple[list[AnyLoaded], list[Problem]]:
    """Parse and validate every policy document of one file."""
    try:
        sources = parse_yaml_documents(read_input(path), path)
    except SpecError as exc:
        return [], list(exc.problems)
    loaded: list[AnyLoaded] = []
    problems: list[Problem] = []
    for source in sources:
        for loc, data in _documents(source):
            if not isinstance(data, dict):
                problems.append(
                    source.problem(loc, "expected a NetworkPolicy or ClusterNetworkPolicy mapping")
                )
                continue
            if is_host_document(data):
                continue  # a GlobalNetworkPolicy: compiler/host/load.py reads it
            policy, found = _validate(source, loc, data)
            problems.extend(found)
            if policy is not None:
                loaded.append(policy)
    return loaded, problems


def _duplicates(policies: Sequence[AnyLoaded]) -> list[Problem]:
    seen: dict[str, AnyLoaded] = {}
    problems = []
    for loaded in policies:
        first = seen.setdefault(loaded.policy.key, loaded)
        if first is not loaded:
            problems.append(
                loaded.problem(
                    ("metadata", "name"),
                    f"{loaded.policy.kind} {loaded.policy.key} is defined twice (also "
                    f"{first.origin})",
                )
            )
    return problems


def load_policies(
    patterns: Sequence[str], base_dir: Path, cluster: Source
) -> tuple[tuple[AnyLoaded, ...], tuple[Path, ...]]:
    """Load every policy the cluster lists; raise SpecError with all problems found.

    Returns:
        The policies (NetworkPolicies by namespace/name, then ClusterNetworkPolicies by name),
        and the files read (for the input digest).
    """
    files, problems = expand_globs(patterns, base_dir, cluster)
    loaded: list[AnyLoaded] = []
    for path in files:
        found, file_problems = load_policy_file(path)
        loaded.extend(found)
        problems.extend(file_problems)
    problems.extend(_duplicates(loaded))
    if problems:
        raise SpecError(problems)
    return tuple(sorted(loaded, key=lambda p: (p.policy.kind, p.policy.key))), files
