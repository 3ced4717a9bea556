"""Requests to the stub Kubernetes API (tests/support/kubeapi.py): paths, selectors, errors.

Kept apart from the store and the server so each stays small; the semantics are the real API
server's for what calicc and watching clients send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
}
KINDS = {
    "pods": ("Pod", "PodList"),
    "namespaces": ("Namespace", "NamespaceList"),
    "services": ("Service", "ServiceList"),
    "endpointslices": ("EndpointSlice", "EndpointSliceList"),
}
CORE = frozenset({"pods", "namespaces", "services"})  # under /api/v1 (the rest: GROUPS)
GROUPS = {"endpointslices": "discovery.k8s.io/v1"}  # kind -> group/version, under /apis


def api_version(kind: str) -> str:
    """Return the apiVersion of a kind's objects and lists ("v1" for the core ones)."""
    return GROUPS.get(kind, "v1")


class ApiError(Exception):
    """A request the API answers with a Status object (code, reason, message)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        """Return the error as a metav1.Status object."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _selector_terms(text: str) -> list[tuple[str, str, str]]:
    """Split a selector `k=v,k!=v,k,!k` into (key, op, value) terms.

    Examples:
        >>> _selector_terms("a=1,b!=2,c,!d")
        [('a', '=', '1'), ('b', '!=', '2'), ('c', 'exists', ''), ('d', '!exists', '')]
    """
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key, "!=", value))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            terms.append((key, "=", value))
        elif term.startswith("!"):
            terms.append((term[1:], "!exists", ""))
        else:
            terms.append((term, "exists", ""))
    return terms


def _matches(terms: list[tuple[str, str, str]], get: Callable[[str], str | None]) -> bool:
    for key, op, value in terms:
        have = get(key)
        if (
            (op == "=" and have != value)
            or (op == "!=" and have == value)
            or (op == "exists" and have is None)
            or (op == "!exists" and have is not None)
        ):
            return False
    return True


def field_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """Return a predicate for a fieldSelector; an unsupported field is a 400 (as upstream)."""
    terms = _selector_terms(text)
    for key, op, _ in terms:
        if key not in FIELDS or op not in ("=", "!="):
            raise ApiError(400, "BadRequest", f'field label not supported: "{key}"')
    return lambda obj: _matches(terms, lambda key: str(FIELDS[key](obj)))


def label_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """Return a predicate for a labelSelector of equality and existence terms."""
    terms = _selector_terms(text)
    return lambda obj: _matches(terms, (obj["metadata"].get("labels") or {}).get)


@dataclass(frozen=True)
class Query:
    """What a GET asks for: a list (of `kind`, maybe in `namespace`) or one object (`name`)."""

    kind: str
    namespace: str | None = None
    name: str | None = None
    watch: bool = False


def parse_path(path: str) -> Query:
    """Map an API path to a Query; anything else is a 404.

    Examples:
        >>> parse_path("/api/v1/namespaces/x/pods/a")
        Query(kind='pods', namespace='x', name='a', watch=False)
        >>> parse_path("/api/v1/watch/namespaces")
        Query(kind='namespaces', namespace=None, name=None, watch=True)
    """
    parts = [unquote(p) for p in path.strip("/").split("/")]
    grouped = _grouped(parts)
    if grouped is not None:
        return grouped
    if parts[:2] != ["api", "v1"]:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    rest, watch = parts[2:], parts[2:3] == ["watch"]
    rest = rest[1:] if watch else rest
    shapes: dict[int, Callable[[list[str]], Query | None]] = {
        1: lambda r: Query(r[0], watch=watch) if r[0] in CORE else None,
        2: lambda r: Query("namespaces", name=r[1]) if r[0] == "namespaces" else None,
        3: lambda r: Query("pods", r[1], watch=watch) if r[::2] == ["namespaces", "pods"] else None,
        4: lambda r: Query("pods", r[1], r[3]) if r[::2] == ["namespaces", "pods"] else None,
    }
    shape = shapes.get(len(rest))
    found = shape(rest) if shape else None
    if found is None:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    return found


def _grouped(parts: list[str]) -> Query | None:
    """Return the Query of a cluster-wide list of a group's kind (/apis/GROUP/VERSION/KIND).

    Examples:
        >>> _grouped(["apis", "discovery.k8s.io", "v1", "watch", "endpointslices"])
        Query(kind='endpointslices', namespace=None, name=None, watch=True)
    """
    if parts[:1] != ["apis"]:
        return None
    rest = parts[3:]
    watch = rest[:1] == ["watch"]
    rest = rest[1:] if watch else rest
    if len(rest) == 1 and GROUPS.get(rest[0]) == "/".join(parts[1:3]):
        return Query(rest[0], watch=watch)
    return None
