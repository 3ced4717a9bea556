"""Decode a bundle's JSON files (node.json, cluster.json) and validate them against the contract.

Strict JSON: UTF-8, no duplicate keys, of a bundle_version this agent reads, then the pydantic
model (contract/manifest.py). Every message names the file and the field or place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from calicc.agent import AgentError
from calicc.agent.bundle_checks import problems_error, quote_field
from calicc.contract.names import BUNDLE_VERSION

Model = TypeVar("Model", bound=BaseModel)

# Keys only a node.json of the layout before the cluster part had (it carried the cluster's
# pools, sets and policies and every other node's routes itself).
EARLIER_LAYOUT_KEYS = ("ipsets", "policies", "neighbors", "fdb")
# The layout of the tree of each earlier bundle_version, and of the one this agent reads.
LAYOUT = (
    "a node's directory holds node.json and bird.conf, the rest is shared in cluster/; "
    "policy.json binds ClusterNetworkPolicy tiers and host protection profiles"
)
EARLIER_VERSIONS = {
    1: "its tree has no cluster/ part (node.json lists the cluster's pools, sets and policies)",
    2: "its tree keeps each node's routes, sysctl, CNI and iptables files in the node's directory",
    3: "its policy.json binds no ClusterNetworkPolicy tiers and no host protection",
}


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def decode(path: Path, raw: bytes) -> Any:
    """Return the JSON value of a bundle file, or raise an error naming the file and place."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgentError(
            f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise AgentError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    except _DuplicateKey as exc:
        key = quote_field(str(exc))
        raise AgentError(f"{path}: {key}: the key appears twice in one object") from exc
    except RecursionError as exc:
        raise AgentError(f"{path}: not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise AgentError(f"{path}: not valid JSON: {str(exc)[:200]}") from exc


def _field(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{quote_field(p)}" for p in loc)[1:]


def earlier_layout(data: dict[str, Any]) -> str | None:
    """Return why a node.json that does not validate fails, when it is of the earlier layout."""
    if any(key in data for key in EARLIER_LAYOUT_KEYS):
        return (
            "this node.json is of the earlier layout (it lists the cluster's pools, sets and "
            "policies itself, with no cluster/ files): rebuild the tree with this calicc"
        )
    return None


def _union_member(part: int | str) -> bool:
    """Return whether a location part names a member of a union (pydantic's tag, with '[')."""
    return isinstance(part, str) and "[" in part


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[str]:
    """Return one `field: message` per field, the members of a union (IPv4 or IPv6) merged.

    Examples:
        >>> v4, v6 = "Input is not a valid IPv4 network", "Input is not a valid IPv6 network"
        >>> field_errors([
        ...     {"loc": ("routes", 0, "dst", "lax[v4]"), "msg": v4},
        ...     {"loc": ("routes", 0, "dst", "lax[v6]"), "msg": v6},
        ... ])
        ['routes[0].dst: Input is not a valid IPv4 network or IPv6 network']
    """
    merged: dict[str, list[str]] = {}
    for e in errors:
        loc = tuple(p for p in e["loc"] if not _union_member(p))
        merged.setdefault(_field(loc) or "(top)", []).append(str(e["msg"]))
    return [f"{field}: {_either(messages)}" for field, messages in merged.items()]


def _either(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    words = [m.split(" ") for m in unique]
    shared = 0
    while all(len(w) > shared + 1 and w[shared] == words[0][shared] for w in words):
        shared += 1
    head = " ".join(words[0][:shared])
    tails = " or ".join(" ".join(w[shared:]) for w in words)
    return f"{head} {tails}" if head else tails


def version_problem(version: object) -> str:
    """Return why a file of bundle_version `version` (not this agent's) is refused.

    Examples:
        >>> version_problem(2).startswith("2 is from an older calicc")
        True
        >>> version_problem("3").startswith("'3' is not one this agent knows")
        True
    """
    if isinstance(version, int) and not isinstance(version, bool) and 0 < version < BUNDLE_VERSION:
        layout = EARLIER_VERSIONS.get(version, "its tree is of an earlier layout")
        return (
            f"{version} is from an older calicc: {layout}; this agent reads bundle_version "
            f"{BUNDLE_VERSION} ({LAYOUT}): rebuild the tree with this calicc"
        )
    return (
        f"{repr(version)[:40]} is not one this agent knows (it reads bundle_version "
        f"{BUNDLE_VERSION}); rebuild with a matching calicc"
    )


def parse_model(
    path: Path,
    raw: bytes,
    model: type[Model],
    what: str,
    explain: Callable[[dict[str, Any]], str | None] | None = None,
) -> Model:
    """Return `raw` (the bytes of `path`, a `what`) as `model`, or raise naming every bad field.

    `explain` may name one cause for data that does not validate (it replaces the field list).

    Raises:
        AgentError: not UTF-8 JSON, not an object, another bundle_version (for a model that
            has one), or invalid fields.
    """
    data = decode(path, raw)
    if not isinstance(data, dict):
        raise AgentError(f"{path}: the {what} must be a JSON object, not {type(data).__name__}")
    if "bundle_version" in model.model_fields and data.get("bundle_version") != BUNDLE_VERSION:
        raise AgentError(f"{path}: bundle_version: {version_problem(data.get('bundle_version'))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = [f"{path}: {line}" for line in field_errors(exc.errors())]
        hint = explain(data) if explain is not None else None
        raise problems_error(path.parent, [f"{path}: {hint}"] if hint else found) from exc
