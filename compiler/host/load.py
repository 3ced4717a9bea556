"""Find and validate the GlobalNetworkPolicy documents in the policy files a cluster lists.

The policy files hold Kubernetes NetworkPolicy and Calico GlobalNetworkPolicy documents side
by side (`kind` tells them apart; compiler/policy/load.py reads the others). Every problem
names its file, line and field; all of them are reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.host.model import GlobalNetworkPolicy
from calicc.compiler.load import Loc, Source, parse_yaml_documents, read_input
from calicc.compiler.spec_errors import problems_from

HOST_KIND = "GlobalNetworkPolicy"


@dataclass(frozen=True)
class LoadedHostPolicy:
    """A validated host policy and where it was written."""

    policy: GlobalNetworkPolicy
    source: Source
    loc: Loc

    def problem(self, loc: Loc, message: str) -> Problem:
        """Build a Problem at `loc` inside this policy's document."""
        return self.source.problem((*self.loc, *loc), message)

    def where(self, loc: Loc = ()) -> str:
        """Return `file:line` of `loc` inside the document, for comments and messages."""
        line, _ = self.source.position((*self.loc, *loc))
        return f"{self.source.path.name}:{line}"

    @property
    def name(self) -> str:
        """Return the policy's name, its identity."""
        return self.policy.metadata.name


def is_host_document(data: object) -> bool:
    """Return whether a policy file's document is a GlobalNetworkPolicy."""
    return isinstance(data, dict) and data.get("kind") == HOST_KIND


def _documents(source: Source) -> list[tuple[Loc, object]]:
    data = source.data
    if isinstance(data, dict) and data.get("kind") == "List":
        items = data.get("items")
        return [
            (("items", i), item) for i, item in enumerate(items if isinstance(items, list) else [])
        ]
    return [((), data)]


def _validate(
    source: Source, loc: Loc, data: object
) -> tuple[LoadedHostPolicy | None, list[Problem]]:
    sub = Source(
        path=source.path,
        data=data,
        lines={k[len(loc) :]: v for k, v in source.lines.items() if k[: len(loc)] == loc},
    )
    try:
        policy = GlobalNetworkPolicy.model_validate(data)
    except ValidationError as exc:
        return None, problems_from(exc, sub, GlobalNetworkPolicy)
    return LoadedHostPolicy(policy, source, loc), []


def load_host_file(path: Path) -> tuple[list[LoadedHostPolicy], list[Problem]]:
    """Parse one policy file; validate its GlobalNetworkPolicy documents."""
    try:
        sources = parse_yaml_documents(read_input(path), path)
    except SpecError:
        return [], []  # compiler/policy/load.py reports the file's problems
    loaded: list[LoadedHostPolicy] = []
    problems: list[Problem] = []
    for source in sources:
        for loc, data in _documents(source):
            if is_host_document(data):
                policy, found = _validate(source, loc, data)
                problems += found
                loaded += [policy] if policy is not None else []
    return loaded, problems


def load_host_policies(files: Sequence[Path]) -> tuple[LoadedHostPolicy, ...]:
    """Load every host policy of the policy files; raise SpecError with all problems.

    Returns:
        The policies sorted by name.
    """
    loaded: list[LoadedHostPolicy] = []
    problems: list[Problem] = []
    for path in files:
        found, file_problems = load_host_file(path)
        loaded += found
        problems += file_problems
    seen: dict[str, LoadedHostPolicy] = {}
    for policy in loaded:
        first = seen.setdefault(policy.name, policy)
        if first is not policy:
            message = f"host policy {policy.name} is defined twice (also {first.where()})"
            problems.append(policy.problem(("metadata", "name"), message))
    if problems:
        raise SpecError(problems)
    return tuple(sorted(loaded, key=lambda p: p.name))
