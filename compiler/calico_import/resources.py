"""Read calicoctl's and kubectl's `-o yaml` output as located resources.

Either tool prints one resource, a `kind: List` (or `IPPoolList`, `NodeList`, ...) of `items`,
or several such documents separated by `---`; calicoctl asked for several kinds at once
(`calicoctl get ippools,nodes -o yaml`) prints a YAML sequence of such Lists. Calico's
resources are `projectcalico.org/v3` (calicoctl, or the Calico API server) or
`crd.projectcalico.org/v1` (kubectl on the CRDs, the only way to export IPAMBlocks and
BlockAffinities on many versions); NetworkPolicies are `networking.k8s.io/v1`. Anything else
is not such output: every problem names the file, line, resource kind and name, and all are
reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.load import Loc, Source, format_loc, parse_yaml_documents, read_input
from calicc.contract.text import cut

CALICO_APIS = ("projectcalico.org/v3", "crd.projectcalico.org/v1")
POLICY_API = "networking.k8s.io/v1"
LIST_APIS = ("v1", *CALICO_APIS, POLICY_API)
EXPECTED = (
    "expected calicoctl or kubectl `-o yaml` output: resources with apiVersion "
    f"{', '.join(CALICO_APIS)} or {POLICY_API} (a NetworkPolicy), or a List of them"
)


@dataclass(frozen=True)
class Resource:
    """One exported resource, with where it was read (for errors and the report)."""

    api_version: str
    kind: str
    name: str
    data: dict[str, Any]
    source: Source
    loc: Loc

    @property
    def spec(self) -> dict[str, Any]:
        """Return the resource's spec (an empty mapping when it has none)."""
        spec = self.data.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def labels(self) -> dict[str, Any]:
        """Return metadata.labels (empty when unset)."""
        labels = self.data["metadata"].get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def where(self) -> str:
        """Return `file:line` of the resource."""
        line, _ = self.source.position(self.loc)
        return f"{self.source.path.name}:{line}"

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        """Build a Problem at `path` inside this resource, naming its kind and name."""
        line, column = self.source.position((*self.loc, *path))
        field = f"{self.kind} {self.name}" + (f": {format_loc(path)}" if path else "")
        return Problem(str(self.source.path), line, column, field, message)


def _items(data: object, loc: Loc) -> Iterator[tuple[Loc, object]]:
    """Yield each resource of a document: itself, a List's items, or a sequence of Lists."""
    if isinstance(data, list) and not loc:
        for index, each in enumerate(data):
            yield from _items(each, (index,))
        return
    if isinstance(data, dict) and "items" in data and str(data.get("kind", "")).endswith("List"):
        items = data["items"]
        if isinstance(items, list):
            yield from (((*loc, "items", i), item) for i, item in enumerate(items))
            return
        yield (*loc, "items"), items
        return
    yield loc, data


def _resource(source: Source, loc: Loc, data: object) -> Resource | Problem:
    """Return the resource at `loc`, or the problem that makes it unreadable."""
    line, column = source.position(loc)
    here = Problem(str(source.path), line, column, format_loc(loc), "")
    if not isinstance(data, dict):
        return _at(here, f"not a resource (a mapping with apiVersion, kind, metadata); {EXPECTED}")
    api, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(kind, str) or not isinstance(api, str):
        return _at(here, f"no apiVersion and kind; {EXPECTED}")
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    label = f"{kind} {cut(name) if isinstance(name, str) and name else '(no name)'}"
    here = Problem(here.file, here.line, here.column, label, "")
    if api not in (*CALICO_APIS, POLICY_API):
        return _at(here, f"unknown apiVersion {cut(api)!r}; {EXPECTED}")
    if not isinstance(name, str) or not name:
        return _at(here, "metadata.name is missing: every exported resource has one")
    return Resource(api, kind, name, data, source, loc)


def _at(where: Problem, message: str) -> Problem:
    return Problem(where.file, where.line, where.column, where.field, message)


def _read_file(path: Path) -> tuple[list[Resource], list[Problem]]:
    try:
        sources = parse_yaml_documents(read_input(path), path)
    except SpecError as exc:
        return [], list(exc.problems)
    if not sources:
        return [], [Problem(str(path), None, None, "", f"no resources in the file; {EXPECTED}")]
    found: list[Resource] = []
    problems: list[Problem] = []
    for source in sources:
        for loc, data in _items(source.data, ()):
            read = _resource(source, loc, data)
            if isinstance(read, Problem):
                problems.append(read)
            else:
                found.append(read)
    return found, problems


def read_resources(paths: Sequence[Path]) -> list[Resource]:
    """Read every resource of the files, in order; raise SpecError with every problem."""
    resources: list[Resource] = []
    problems: list[Problem] = []
    for path in paths:
        found, bad = _read_file(path)
        resources += found
        problems += bad
    seen: dict[tuple[str, str, str], Resource] = {}
    for res in resources:
        namespace = str(res.data["metadata"].get("namespace", ""))
        first = seen.setdefault((res.kind, namespace, res.name), res)
        if first is not res:
            problems.append(res.problem((), f"exported twice (also at {first.where}); keep one"))
    if problems:
        raise SpecError(problems)
    return resources
