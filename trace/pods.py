"""The pods file of `calicc trace`: the cluster's pods, their labels, ports and addresses.

`calicc trace` names pods as `namespace/name`; this file says what they are (docs/pods-file.md):
the node each runs on, its labels (what policy selectors match), its named container ports (what
named ports in policies resolve to) and, optionally, its addresses. The whole file is validated
by one pydantic model (fast: no per-pod line lookup unless something is wrong), then checked
across pods, and every problem is reported at once as `file:line: field: message`.

A pod without `ips` gets the addresses the node's IPAM would hand out (trace/addresses.py);
a file read before comes from the user's cache (trace/pods_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address
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
from calicc.trace.pods_cache import entry_key, read_entry, write_entry

__all__ = [
    "Address",
    "NamedPort",
    "PodsFile",
    "TracePod",
    "load_pods",
    "pods_on",
]

Address = IPv4Address | IPv6Address
SHOWN_NODES = 5  # nodes listed in an "unknown node" message
DEFAULT_NAMESPACE = "default"
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


@dataclass(frozen=True)
class NamedPort:
    """A named container port: what a NetworkPolicy's named port resolves to on this pod."""

    name: str
    port: int
    protocol: str  # "TCP", "UDP" or "SCTP"


@dataclass(frozen=True)
class TracePod:
    """A pod of the pods file.

    `ips` are the addresses the file gives (empty: predicted by `predict_addresses`); `line` is
    the line of the pod's entry and `path` the file, to locate later problems. The line is
    looked up when asked (`line_at`): a file without problems never builds its line table,
    which costs more than validating it.
    """

    namespace: str
    name: str
    node: str
    labels: Mapping[str, str] = field(hash=False)  # a pod hashes by the other fields
    ports: tuple[NamedPort, ...]
    ips: tuple[Address, ...]
    line_at: Callable[[], int] = field(compare=False, hash=False, repr=False)
    path: Path | None = None

    @property
    def line(self) -> int:
        """Return the line of the pod's entry in the file."""
        return self.line_at()

    @property
    def key(self) -> str:
        """Return `namespace/name`, how `calicc trace` names the pod."""
        return f"{self.namespace}/{self.name}"

    def problem(self, field_name: str, message: str) -> Problem:
        """Build a Problem at this pod's entry."""
        file = str(self.path) if self.path is not None else "pods file"
        return Problem(file, self.line, None, field_name, message)


@dataclass(frozen=True)
class PodsFile:
    """A loaded pods file.

    `namespaces` holds the labels of every namespace that has pods or is listed, each with the
    `kubernetes.io/metadata.name` label Kubernetes sets.
    """

    path: Path
    pods: tuple[TracePod, ...]
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


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


def load_pods(path: Path, nodes: Collection[str]) -> PodsFile:
    """Read and check the pods file at `path` against the cluster's `nodes`.

    A file read and checked before by this same calicc comes from the user's cache
    (trace/pods_cache.py): reading 2,000 pods' YAML costs more than a whole trace. Its lines
    are looked up (the file parsed again) only when a later problem must be located.

    Raises:
        SpecError: with every problem found (syntax, a field, a duplicate pod or address, an
            unknown node), each located at its file, line and field.
    """
    key = entry_key(path)
    cached = _from_cache(key, path, nodes) if key is not None else None
    if cached is not None:
        return cached
    source = read_yaml(path)
    spec = _validate(source)
    problems = _check(spec, source, nodes)
    if problems:
        raise SpecError(problems)
    pods = tuple(_pod(pod, partial(_pod_line, source, i), path) for i, pod in enumerate(spec.pods))
    found = PodsFile(path, pods, _namespaces(spec))
    if key is not None:
        _to_cache(key, found)
    return found


def _from_cache(key: str, path: Path, nodes: Collection[str]) -> PodsFile | None:
    """Return the checked pods of the file whose key is `key`, if they are cached.

    None also when a pod's node is not one of `nodes`: the full read reports where.
    """
    data = read_entry(key)
    try:
        known = set(nodes)
        pods = []
        for index, item in enumerate(data["pods"] if data is not None else ()):
            if item["node"] not in known:
                return None
            pods.append(
                TracePod(
                    item["namespace"],
                    item["name"],
                    item["node"],
                    item["labels"],
                    tuple(NamedPort(*port) for port in item["ports"]),
                    tuple(ip_address(a) for a in item["ips"]),
                    partial(_line_in_file, path, index),
                    path,
                )
            )
        return PodsFile(path, tuple(pods), data["namespaces"]) if data is not None else None
    except (ValueError, KeyError, TypeError):
        return None  # an entry this code cannot read: the full read


def _to_cache(key: str, pods: PodsFile) -> None:
    """Keep the checked pods as plain data."""
    write_entry(
        key,
        {
            "pods": [
                {
                    "namespace": p.namespace,
                    "name": p.name,
                    "node": p.node,
                    "labels": dict(p.labels),
                    "ports": [[n.name, n.port, n.protocol] for n in p.ports],
                    "ips": [str(a) for a in p.ips],
                }
                for p in pods.pods
            ],
            "namespaces": {name: dict(labels) for name, labels in pods.namespaces.items()},
        },
    )


def _line_in_file(path: Path, index: int) -> int:
    """Return the line of pod `index` of the file, parsing it again (for a located problem)."""
    try:
        return _pod_line(read_yaml(path), index)
    except SpecError:
        return 0


def pods_on(pods: PodsFile, node: str) -> tuple[TracePod, ...]:
    """Return the pods of `node`, in file order (the order IPAM hands out their addresses)."""
    return tuple(pod for pod in pods.pods if pod.node == node)
