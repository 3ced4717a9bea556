"""The pods file as written: its pydantic model and the checks across its pods.

trace/pods.py reads a pods file through here only when its user's cache does not hold it
(trace/pods_cache.py): the model's imports cost more than a cached read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError, field_validator

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.load import Source, read_yaml
from calicc.compiler.policy.model import PORT_MAX, Protocol, check_port_name
from calicc.compiler.spec_errors import problems_from
from calicc.contract.endpoint import NAMESPACE_NAME_LABEL, with_name_label
from calicc.contract.fields import Dns1123Label, Dns1123Subdomain, Labels
from calicc.contract.manifest import Strict
from calicc.trace.pods import (
    DEFAULT_NAMESPACE,
    SHOWN_NODES,
    Address,
    NamedPort,
    PodsFile,
    TracePod,
)

MAPPING_EXPECTED = (
    "expected a mapping with `pods:` (a list of pods) and optionally `namespaces:` "
    "(labels per namespace); see docs/pods-file.md"
)


class PortSpec(Strict):
    """A named container port, as written in the file."""

    name: Annotated[str, AfterValidator(check_port_name)]
    port: int = Field(ge=1, le=PORT_MAX)
    protocol: Protocol = "TCP"


class PodSpec(Strict):
    """One pod, as written in the file."""

    name: Dns1123Subdomain
    namespace: Dns1123Label = DEFAULT_NAMESPACE
    node: str
    labels: Labels = Field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()
    ips: tuple[IPv4Address | IPv6Address, ...] = ()

    @field_validator("ips")
    @classmethod
    def _one_per_family(cls, ips: tuple[Address, ...]) -> tuple[Address, ...]:
        for version in (4, 6):
            same = [str(a) for a in ips if a.version == version]
            if len(same) > 1:
                raise ValueError(
                    f"a pod has at most one IPv{version} address (got {', '.join(same)}); "
                    "keep the one it has"
                )
        return ips


class PodsSpec(Strict):
    """The whole pods file."""

    namespaces: dict[Dns1123Label, Labels] = Field(default_factory=dict)
    pods: tuple[PodSpec, ...]


def _pod(spec: PodSpec, line_at: Callable[[], int], path: Path) -> TracePod:
    ports = tuple(NamedPort(p.name, p.port, p.protocol) for p in spec.ports)
    ips = tuple(sorted(spec.ips, key=lambda a: a.version))
    return TracePod(spec.namespace, spec.name, spec.node, spec.labels, ports, ips, line_at, path)


def _validate(source: Source) -> PodsSpec:
    if not isinstance(source.data, dict):
        raise SpecError([source.problem((), MAPPING_EXPECTED)])
    try:
        return PodsSpec.model_validate(source.data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, source, PodsSpec)) from exc


def _duplicate_pods(spec: PodsSpec, source: Source) -> list[Problem]:
    first: dict[tuple[str, str], int] = {}
    problems = []
    for index, pod in enumerate(spec.pods):
        seen = first.setdefault((pod.namespace, pod.name), index)
        if seen != index:
            line, _ = source.position(("pods", seen))
            message = (
                f"pod {pod.namespace}/{pod.name} is listed twice (also at line {line}); "
                "a namespace holds one pod of a name"
            )
            problems.append(source.problem(("pods", index, "name"), message))
    return problems


def _unknown_nodes(spec: PodsSpec, source: Source, nodes: Collection[str]) -> list[Problem]:
    known = sorted(nodes)
    shown = ", ".join(known[:SHOWN_NODES]) + (", ..." if len(known) > SHOWN_NODES else "")
    return [
        source.problem(
            ("pods", index, "node"),
            f"{pod.node!r} is not a node of the cluster; use one of: {shown or 'none'}",
        )
        for index, pod in enumerate(spec.pods)
        if pod.node not in nodes
    ]


def _duplicate_ips(spec: PodsSpec, source: Source) -> list[Problem]:
    owner: dict[Address, PodSpec] = {}
    problems = []
    for index, pod in enumerate(spec.pods):
        for address in pod.ips:
            first = owner.setdefault(address, pod)
            if first is not pod:
                message = (
                    f"{address} is also pod {first.namespace}/{first.name}'s address; "
                    "give each pod its own, or leave ips out to have them predicted"
                )
                problems.append(source.problem(("pods", index, "ips"), message))
    return problems


def _duplicate_port_names(spec: PodsSpec, source: Source) -> list[Problem]:
    problems = []
    for index, pod in enumerate(spec.pods):
        seen: set[str] = set()
        for number, port in enumerate(pod.ports):
            if port.name in seen:
                message = f"port name {port.name!r} is used twice in this pod; names are unique"
                problems.append(source.problem(("pods", index, "ports", number, "name"), message))
            seen.add(port.name)
    return problems


def _name_labels(spec: PodsSpec, source: Source) -> list[Problem]:
    return [
        source.problem(
            ("namespaces", namespace, NAMESPACE_NAME_LABEL),
            f"Kubernetes sets this label to the namespace's name ({namespace!r}); leave it out",
        )
        for namespace, labels in spec.namespaces.items()
        if labels.get(NAMESPACE_NAME_LABEL, namespace) != namespace
    ]


def _check(spec: PodsSpec, source: Source, nodes: Collection[str]) -> list[Problem]:
    """The checks across pods, after each pod validated on its own."""
    return [
        *_duplicate_pods(spec, source),
        *_unknown_nodes(spec, source, nodes),
        *_duplicate_ips(spec, source),
        *_duplicate_port_names(spec, source),
        *_name_labels(spec, source),
    ]


def _namespaces(spec: PodsSpec) -> dict[str, Mapping[str, str]]:
    names = sorted({*spec.namespaces, *(pod.namespace for pod in spec.pods)})
    return {name: with_name_label(name, spec.namespaces.get(name, {})) for name in names}


def _pod_line(source: Source, index: int) -> int:
    return source.position(("pods", index))[0] or 0


def read_pods(path: Path, nodes: Collection[str]) -> PodsFile:
    """Read, validate and check the pods file at `path` against the cluster's `nodes`.

    Raises:
        SpecError: with every problem found, each located at its file, line and field.
    """
    source = read_yaml(path)
    spec = _validate(source)
    problems = _check(spec, source, nodes)
    if problems:
        raise SpecError(problems)
    pods = tuple(_pod(pod, partial(_pod_line, source, i), path) for i, pod in enumerate(spec.pods))
    return PodsFile(path, pods, _namespaces(spec))
