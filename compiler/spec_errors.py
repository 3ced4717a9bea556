"""Turn pydantic validation errors into located, actionable Problems."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from ipaddress import ip_interface, ip_network
from typing import Any

from pydantic import BaseModel, ValidationError

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.contract.manifest import SecretRef
from calicc.contract.text import cut


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """Find the model class inside an annotation such as `tuple[Node, ...] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    keys: list[str] = []
    for name, info in model.model_fields.items():
        keys.append(name)
        choices = getattr(info.validation_alias, "choices", None) or []
        keys.extend(c for c in choices if isinstance(c, str) and c != name)
    return keys


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Return the model class that validates the mapping at `loc`, if one does."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            aliased = [
                f
                for f in current.model_fields.values()
                if part in (getattr(f.validation_alias, "choices", None) or [])
            ]
            field = aliased[0] if aliased else None
        current = _model_in(field.annotation) if field is not None else None
    return current


def is_secret(root: type[BaseModel], loc: Sequence[str | int]) -> bool:
    """Return whether `loc` is, or is inside, a field that holds a secret reference."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return False
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return False
        current = _model_in(field.annotation)
        if current is SecretRef:
            return True
    return False


def _shown(value: Any) -> str:
    return cut(repr(value))


# pydantic's error types of IP fields: family, what the field holds, an example of it
IP_KINDS = {
    "ip_v4_network": (4, "network", "10.244.0.0/16"),
    "ip_v6_network": (6, "network", "fd00:244::/56"),
    "ip_v4_address": (4, "address", "10.0.0.1"),
    "ip_v6_address": (6, "address", "fd00:30::1"),
    "ip_v4_interface": (4, "address with its prefix", "10.0.0.5/24"),
    "ip_v6_interface": (6, "address with its prefix", "fd00:30::5/64"),
}
OTHER_FAMILY_KEY = {
    "network_cidr": "network_cidr_v6",
    "network_cidr_v6": "network_cidr",
    "address": "address_v6",
    "address_v6": "address",
    "service_cluster_ip_range": "service_cluster_ip_range_v6",
    "service_cluster_ip_range_v6": "service_cluster_ip_range",
}


def _family_of(value: Any) -> int | None:
    """Return the IP version `value` reads as (address, network or interface), else None."""
    if not isinstance(value, str):
        return None
    try:
        return ip_interface(value).version
    except ValueError:
        return None


def ip_message(kinds: Sequence[str], loc: tuple[str | int, ...], value: Any) -> str:
    """Say what an IP field takes, what it got, and where a value of the other family goes.

    `kinds` are the pydantic error types at `loc`: one for a single-family field, one per
    family for a field that takes either.
    """
    families = sorted({IP_KINDS[k][0] for k in kinds})
    what = IP_KINDS[kinds[0]][1]
    taken = " or ".join(f"IPv{f}" for f in families)
    expected = f"expected an {taken} {what} such as " + " or ".join(
        IP_KINDS[k][2] for k in sorted(kinds)
    )
    found = _family_of(value)
    if found is not None and found not in families:
        other = OTHER_FAMILY_KEY.get(str(loc[-1]) if loc else "")
        move = f"; an IPv{found} one goes in {other}" if other else ""
        return f"{cut(str(value))} is IPv{found}: this field takes {taken} ({expected}){move}"
    if what == "network" and found is not None:
        try:
            net = ip_network(value, strict=False)
        except ValueError:
            pass
        else:
            return f"{cut(str(value))} has host bits set: the network holding it is {net}"
    return f"{expected} (got {_shown(value)})"


def _message(root: type[BaseModel], error: Any, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if is_secret(root, loc):
        return _secret_message(error, loc)
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        valid = sorted(_keys(parent)) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint} Valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in ("enum", "literal_error"):
        return f"{message} (got {_shown(error.get('input'))})"
    if kind != "value_error" and "input" in error and not isinstance(error["input"], dict | list):
        return f"{message} (got {_shown(error['input'])})"
    return message


def _secret_message(error: Any, loc: tuple[str | int, ...]) -> str:
    """The error of a secret field, which never shows the value (it may be the secret)."""
    if error["type"] == "extra_forbidden":
        return "unknown key (value not shown: this is a secret field); valid keys: env, file"
    if loc[-1] == "env":
        return "give the name of an environment variable of the agent, e.g. BGP_PASSWORD"
    if loc[-1] == "file":
        return "give an absolute path of a file on the node, e.g. /etc/calicc/bgp-password"
    return (
        "a secret is referenced, never written here: give {env: VARIABLE} or {file: /path} "
        "on the node (value not shown)"
    )


def _data_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union-branch and validator markers, keeping only data keys."""
    return tuple(p for p in loc if isinstance(p, int) or "[" not in str(p))


def problems_from(exc: ValidationError, source: Source, root: type[BaseModel]) -> list[Problem]:
    """One Problem per pydantic error, located through the source's side table."""
    errors = exc.errors()
    locs = [_data_loc(e["loc"]) for e in errors]
    ip_kinds: dict[tuple[str | int, ...], list[str]] = {}
    for error, loc in zip(errors, locs, strict=True):
        if error["type"] in IP_KINDS:
            ip_kinds.setdefault(loc, []).append(error["type"])
    problems = []
    for error, loc in zip(errors, locs, strict=True):
        nested = any(other[: len(loc)] == loc and len(other) > len(loc) for other in locs)
        if error["type"] == "too_short" and nested:
            continue
        if error["type"] in IP_KINDS:
            kinds = ip_kinds.pop(loc, None)  # one problem for the errors of both families
            if kinds is not None:
                problems.append(source.problem(loc, ip_message(kinds, loc, error.get("input"))))
            continue
        problems.append(source.problem(loc, _message(root, error, loc)))
    return problems
