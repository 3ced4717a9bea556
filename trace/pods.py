"""The pods file of `calicc trace`: the cluster's pods, their labels, ports and addresses.

`calicc trace` names pods as `namespace/name`; this file says what they are (docs/pods-file.md):
the node each runs on, its labels (what policy selectors match), its named container ports (what
named ports in policies resolve to) and, optionally, its addresses. The whole file is validated
by one pydantic model (trace/pods_spec.py; fast: no per-pod line lookup unless something is
wrong), then checked across pods, and every problem is reported at once as
`file:line: field: message`.

A pod without `ips` gets the addresses the node's IPAM would hand out (trace/addresses.py);
a file read before comes from the user's cache (trace/pods_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from calicc.compiler.errors import Problem, SpecError
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
    from calicc.trace.pods_spec import read_pods  # noqa: PLC0415 (pydantic: only on a miss)

    found = read_pods(path, nodes)
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
    from calicc.compiler.load import read_yaml  # noqa: PLC0415 (only to locate a problem)

    try:
        return read_yaml(path).position(("pods", index))[0] or 0
    except SpecError:
        return 0


def pods_on(pods: PodsFile, node: str) -> tuple[TracePod, ...]:
    """Return the pods of `node`, in file order (the order IPAM hands out their addresses)."""
    return tuple(pod for pod in pods.pods if pod.node == node)
