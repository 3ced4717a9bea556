"""The pods of `calicc trace` read from the Kubernetes API, instead of a pods file.

`calicc trace --kubeconfig K` lists every pod (GET /api/v1/pods; a field selector leaves out the
Succeeded and Failed ones, whose addresses are given back) and every namespace
(GET /api/v1/namespaces) through the project's API client (agent/cni/kube.py), and turns them
into what trace/pods.py makes of a pods file: each pod's namespace, name, node, labels, named
container ports and addresses; each namespace's labels. Each pod is validated by the pods
file's own model, so the API's data meets the same rules (DNS names, label shapes, port
ranges, addresses); a pod or namespace that breaks one is a TraceError naming it, all at once.

Left out, as the cluster's network sees them: host-network pods (their address is the node's),
pods not scheduled yet or without an address, finished pods, and pods on nodes the rendered
tree does not have (a live cluster may run nodes calicc does not manage); the last are counted
per node (`ApiPods.elsewhere`), so the command can say so.
"""

from __future__ import annotations

import http.client
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get
from calicc.agent.kube_endpoints import NAMESPACES, PHASES, PODS
from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.spec_errors import problems_from
from calicc.contract.endpoint import with_name_label
from calicc.contract.fields import Dns1123Label, Labels
from calicc.contract.manifest import Strict
from calicc.trace.errors import TraceError
from calicc.trace.pods import SHOWN_NODES, NamedPort, PodsFile, TracePod
from calicc.trace.pods_spec import PodSpec

__all__ = ["ApiPod", "ApiPods", "pods_from_api"]

LIVE_PODS_PATH = f"{PODS}?fieldSelector={PHASES}"


class NamespaceSpec(Strict):
    """One namespace of the API's list, as the pods file's `namespaces` would hold it."""

    name: Dns1123Label
    labels: Labels = Field(default_factory=dict)


class ApiPod(TracePod):
    """A pod the Kubernetes API listed: it has no file line, so its problems name it instead."""

    def problem(self, field_name: str, message: str) -> Problem:
        """Build a Problem naming the pod and the API it came from (no line: there is none)."""
        where = f"Kubernetes API ({self.path})"
        return Problem(where, None, None, f"pod {self.key} {field_name}", message)


@dataclass(frozen=True)
class ApiPods(PodsFile):
    """The pods the API listed; `elsewhere` counts, per node, those on nodes the tree lacks."""

    elsewhere: Mapping[str, int] = field(default_factory=dict)

    def left_out(self) -> str | None:
        """Say how many pods were left out for running on unknown nodes (None: none were)."""
        if not self.elsewhere:
            return None
        count = sum(self.elsewhere.values())
        nodes = sorted(self.elsewhere)
        shown = ", ".join(f"{n} ({self.elsewhere[n]})" for n in nodes[:SHOWN_NODES])
        more = ", ..." if len(nodes) > SHOWN_NODES else ""
        return (
            f"left out {count} pod{'s' if count != 1 else ''} of the Kubernetes API on nodes "
            f"the tree does not have: {shown}{more}"
        )


def pods_from_api(kubeconfig: Path, nodes: Collection[str]) -> ApiPods:
    """List the cluster's pods and namespaces from the API server `kubeconfig` names.

    Args:
        kubeconfig: the kubeconfig (its current context: server, CA, token or client cert).
        nodes: the nodes of the rendered tree; pods on other nodes are left out and counted.

    Raises:
        TraceError: the API could not be read (unreachable, refused, a bad kubeconfig), or it
            lists pods or namespaces that break the pods file's rules (each one named).
    """
    known = set(nodes)
    elsewhere: Counter[str] = Counter()
    pods: list[TracePod] = []
    problems: list[str] = []
    for raw in _traced(_items(kubeconfig, LIVE_PODS_PATH)):
        if raw["node"] not in known:
            elsewhere[str(raw["node"])] += 1
            continue
        try:
            pods.append(_pod(PodSpec.model_validate(raw), kubeconfig))
        except ValidationError as exc:
            problems += _described(f"pod {raw['namespace']}/{raw['name']}", exc, raw, PodSpec)
    spaces, space_problems = _namespaces(_items(kubeconfig, NAMESPACES))
    problems += space_problems
    if problems:
        raise TraceError(
            f"the Kubernetes API of {kubeconfig} lists what calicc cannot trace:\n  "
            + "\n  ".join(problems)
        )
    pods.sort(key=lambda p: (p.namespace, p.name))
    names = sorted({*spaces, *(p.namespace for p in pods)})
    namespaces = {name: with_name_label(name, spaces.get(name, {})) for name in names}
    return ApiPods(kubeconfig, tuple(pods), namespaces, dict(sorted(elsewhere.items())))


def _items(kubeconfig: Path, api_path: str) -> list[dict[str, Any]]:
    """GET a list from the API; return its objects, or raise a TraceError saying what failed."""
    try:
        body = api_get(kubeconfig, api_path)
    except CniError as exc:
        raise TraceError(
            f"cannot read the cluster's pods from the Kubernetes API: {exc.msg}"
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # a CA or token file, URL
        raise TraceError(f"cannot use kubeconfig {kubeconfig}: {exc}") from None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise TraceError(
            f"GET {api_path} from the server of {kubeconfig} answered no list of objects; "
            "is it a Kubernetes API server?"
        )
    return [item for item in items if isinstance(item, dict)]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _addresses(status: Mapping[str, Any]) -> list[Any]:
    """The pod's addresses as the API gives them: status.podIPs, else status.podIP."""
    listed = [_mapping(entry).get("ip") for entry in _sequence(status.get("podIPs"))]
    return [ip for ip in listed if ip] or ([status["podIP"]] if status.get("podIP") else [])


def _named_ports(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers' named ports, in the pods file's shape (protocol TCP unless given)."""
    return [
        {
            "name": port["name"],
            "port": port.get("containerPort"),
            "protocol": port.get("protocol") or "TCP",
        }
        for container in _sequence(spec.get("containers"))
        for port in map(_mapping, _sequence(_mapping(container).get("ports")))
        if port.get("name")
    ]


def _traced(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Yield each pod the network holds an address for, as a pods file's entry would say it."""
    for item in items:
        meta, spec, status = (_mapping(item.get(key)) for key in ("metadata", "spec", "status"))
        ips = _addresses(status)
        if spec.get("hostNetwork") or not spec.get("nodeName") or not ips:
            continue
        yield {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "node": spec["nodeName"],
            "labels": meta.get("labels") or {},
            "ports": _named_ports(spec),
            "ips": ips,
        }


def _pod(spec: PodSpec, kubeconfig: Path) -> ApiPod:
    ports = tuple(NamedPort(p.name, p.port, p.protocol) for p in spec.ports)
    ips = tuple(sorted(spec.ips, key=lambda a: a.version))
    return ApiPod(
        spec.namespace, spec.name, spec.node, spec.labels, ports, ips, lambda: 0, kubeconfig
    )


def _namespaces(items: list[dict[str, Any]]) -> tuple[dict[str, Labels], list[str]]:
    """Return each namespace's labels, and what is wrong with the ones that break the rules."""
    spaces: dict[str, Labels] = {}
    problems: list[str] = []
    for item in items:
        meta = _mapping(item.get("metadata"))
        raw = {"name": meta.get("name"), "labels": meta.get("labels") or {}}
        try:
            found = NamespaceSpec.model_validate(raw)
        except ValidationError as exc:
            problems += _described(f"namespace {raw['name']}", exc, raw, NamespaceSpec)
            continue
        spaces[found.name] = found.labels
    return spaces, problems


def _described(what: str, exc: ValidationError, raw: Any, model: type[BaseModel]) -> list[str]:
    """Say each of an object's validation errors, with the field, as the pods file says them."""
    found = problems_from(exc, Source(Path(what), raw), model)
    return [f"{what}: {p.field}: {p.message}" if p.field else f"{what}: {p.message}" for p in found]
