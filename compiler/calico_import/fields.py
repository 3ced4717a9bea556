"""Small readers shared by the mappers: typed spec values, AS numbers, leftover fields."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from calicc.compiler.calico_import.report import UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.selector import SelectorError, parse_selector
from calicc.contract.text import cut

NO_EQUIVALENT = "calicc has no equivalent"
UNSET: tuple[object, ...] = (None, False, "", [], {})
# Calico's documented defaults: a field set to its default says nothing calicc would lose
DEFAULTS: Mapping[str, object] = {
    "assignmentMode": "Automatic",
    "namespaceSelector": "all()",
    "bindMode": "None",
    "logSeverityScreen": "Info",
    "sourceAddress": "UseNodeIP",
    "reversePeering": "Auto",
    "nextHopMode": "Auto",
}
AS_PART = 65536


def leftover(res: Resource, mapped: frozenset[str], reasons: Mapping[str, str]) -> Iterator[Note]:
    """Yield an `unmapped` note for each spec field set to more than its default."""
    for key, value in sorted(res.spec.items()):
        if key in mapped or value in UNSET or (key in DEFAULTS and DEFAULTS[key] == value):
            continue
        reason = reasons.get(key, NO_EQUIVALENT)
        yield Note(UNMAPPED, res.kind, res.name, f"spec.{key}", f"{reason} (was {shown(value)})")


def shown(value: object) -> str:
    """Return a value as it reads in JSON (and so in YAML flow style), cut when long."""
    return cut(json.dumps(value, default=str, sort_keys=True))


class Reader:
    """Reads typed values out of one resource's spec, collecting a Problem per bad value."""

    def __init__(self, res: Resource, problems: list[Problem]) -> None:
        self.res = res
        self.problems = problems

    def fail(self, key: str, message: str) -> None:
        """Record a problem at spec.KEY (dotted for nested keys)."""
        self.problems.append(self.res.problem(("spec", *key.split(".")), message))

    def value(self, key: str) -> Any:
        """Return spec.KEY (dotted for nested keys), None when unset."""
        value: Any = self.res.spec
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def network(self, key: str, *, required: bool = False) -> IPv4Network | IPv6Network | None:
        """Return spec.KEY as a network; a bad or (when required) missing one is a problem."""
        value = self.value(key)
        if value is None and not required:
            return None
        try:
            return ip_network(str(value)) if isinstance(value, str) else _no_cidr(value)
        except ValueError:
            self.fail(key, f"expected a CIDR such as 10.244.0.0/16, got {cut(value)!r}")
            return None

    def boolean(self, key: str, default: bool = False) -> bool:
        """Return spec.KEY as a boolean (crd.projectcalico.org/v1 may write "true")."""
        value = self.value(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):  # crd.projectcalico.org/v1 writes some as strings
            return bool(value == "true")
        self.fail(key, f"expected true or false, got {cut(value)!r}")
        return default

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """Return spec.KEY, one of `choices`, or `default` when unset."""
        value = self.value(key)
        if value is None or value == "":
            return default
        if value not in choices:
            self.fail(key, f"expected one of {', '.join(choices)}, got {cut(value)!r}")
            return default
        return str(value)

    def as_number(self, key: str) -> int | None:
        """Return spec.KEY as an AS number, None when unset."""
        value = self.value(key)
        if value is None:
            return None
        number = parse_as_number(value)
        if number is None:
            self.fail(key, f"expected an AS number such as 64512 or 1.10, got {cut(value)!r}")
        return number


def _no_cidr(value: object) -> IPv4Network:
    raise ValueError(value)


def parse_as_number(value: object) -> int | None:
    """Return an AS number written as Calico accepts it: 64512, "64512" or asdot "1.10".

    Examples:
        >>> parse_as_number("1.10")
        65546
    """
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str) and value.count(".") == 1 and value.replace(".", "").isdigit():
        high, low = (int(part) for part in value.split("."))
        number = high * AS_PART + low if low < AS_PART else 0
    else:
        return None
    return number if 1 <= number < AS_PART * AS_PART else None


def selector_or_none(text: object) -> tuple[str | None, str | None]:
    """Return (calicc's selector, None) or (None, why): '' and all() select every node."""
    if not isinstance(text, str) or not text.strip() or text.strip() == "all()":
        return None, None
    try:
        parse_selector(text)
    except SelectorError as exc:
        return None, f"calicc does not read this selector ({exc})"
    return text.strip(), None
