"""What a name may be, for every kind of name that reaches a generated file or a node.

The one home of these rules: the cluster model, the policy model and the lock use them. Every
pattern is matched whole (`re.fullmatch`: `$` in `re.match` also accepts a trailing newline,
which would carry a line break into a script). Types are `Annotated` strings, so a field says
what it holds: `interface: InterfaceName | None`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from calicc.contract.patterns import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ENV_VAR,
    IANA_SVC_NAME,
    INTERFACE,
    LABEL_NAME,
    NODE_PATH,
)
from calicc.contract.text import cut

__all__ = ["DNS1123_LABEL", "DNS1123_SUBDOMAIN", "IANA_SVC_NAME", "INTERFACE", "LABEL_NAME"]

DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN_MAX, LABEL_NAME_MAX = 63, 253, 63


def _is(pattern: re.Pattern[str], value: str, limit: int | None = None) -> bool:
    return (limit is None or len(value) <= limit) and pattern.fullmatch(value) is not None


def dns1123_subdomain(value: str) -> str:
    """A Kubernetes object name (nodes, policies): lower-case, digits, '-' and '.'."""
    if not _is(DNS1123_SUBDOMAIN, value, DNS1123_SUBDOMAIN_MAX):
        raise ValueError(
            f"{cut(value)!r} is not a DNS-1123 subdomain: use at most 253 lower-case letters, "
            "digits, '-' and '.', starting and ending with a letter or digit"
        )
    return value


def dns1123_label(value: str) -> str:
    """A namespace or cluster name: lower-case letters, digits and '-', at most 63."""
    if not _is(DNS1123_LABEL, value, DNS1123_LABEL_MAX):
        raise ValueError(
            f"{cut(value)!r} is not a DNS-1123 label: use at most 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def interface_name(value: str) -> str:
    """A Linux network interface name."""
    if value in (".", "..") or not _is(INTERFACE, value):
        raise ValueError(
            f"{cut(value)!r} is not an interface name: use 1-15 letters, digits, '_', '-' or "
            "'.' (no '/', ':', spaces or quotes), e.g. eth0 or bond0.100"
        )
    return value


def label_key(key: str) -> str:
    """A Kubernetes label key: an optional DNS-1123 prefix and '/', then a name of 1-63."""
    prefix, slash, name = key.rpartition("/")
    if slash and not _is(DNS1123_SUBDOMAIN, prefix, DNS1123_SUBDOMAIN_MAX):
        raise ValueError(f"label key {cut(key)!r}: the prefix is not a DNS-1123 subdomain")
    if not _is(LABEL_NAME, name, LABEL_NAME_MAX):
        raise ValueError(
            f"label key {cut(key)!r}: the name must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return key


def label_value(value: str) -> str:
    """A Kubernetes label value: empty, or 1-63 letters, digits, '-', '_' or '.'."""
    if value and not _is(LABEL_NAME, value, LABEL_NAME_MAX):
        raise ValueError(
            f"label value {cut(value)!r}: use at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def env_var(value: str) -> str:
    """An environment variable name."""
    if not _is(ENV_VAR, value):
        raise ValueError(f"{cut(value)!r} is not an environment variable name, e.g. BGP_PASSWORD")
    return value


def node_path(value: str) -> str:
    """An absolute path on a node: '/'-separated names without '..', spaces or quotes."""
    parts = value.split("/")
    if not _is(NODE_PATH, value, 4096) or any(p in (".", "..") for p in parts):
        raise ValueError(
            f"{cut(value)!r} is not an absolute path of plain names, e.g. /etc/calicc/bgp-password"
        )
    return value


def _schema(pattern: re.Pattern[str], limit: int | None, description: str) -> WithJsonSchema:
    """What editors and the JSON Schema see; validation itself is the functions above."""
    schema: dict[str, object] = {
        "type": "string",
        "pattern": f"^(?:{pattern.pattern})$",
        "description": description,
    }
    if limit is not None:
        schema["maxLength"] = limit
    return WithJsonSchema(schema)


LABEL_KEY = re.compile(rf"({DNS1123_SUBDOMAIN.pattern}/)?{LABEL_NAME.pattern}")

Dns1123Subdomain = Annotated[
    str,
    AfterValidator(dns1123_subdomain),
    _schema(DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX, "a DNS-1123 subdomain"),
]
Dns1123Label = Annotated[
    str,
    AfterValidator(dns1123_label),
    _schema(DNS1123_LABEL, DNS1123_LABEL_MAX, "a DNS-1123 label"),
]
InterfaceName = Annotated[
    str, AfterValidator(interface_name), _schema(INTERFACE, 15, "a Linux interface name")
]
LabelKey = Annotated[
    str, AfterValidator(label_key), _schema(LABEL_KEY, 317, "a Kubernetes label key")
]
LabelValue = Annotated[
    str,
    AfterValidator(label_value),
    _schema(re.compile(f"({LABEL_NAME.pattern})?"), LABEL_NAME_MAX, "a Kubernetes label value"),
]
EnvVarName = Annotated[
    str, AfterValidator(env_var), _schema(ENV_VAR, None, "an environment variable name")
]
NodePath = Annotated[
    str, AfterValidator(node_path), _schema(NODE_PATH, 4096, "an absolute path on the node")
]
Labels = dict[LabelKey, LabelValue]
