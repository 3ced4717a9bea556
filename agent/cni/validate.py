"""Validation of one invocation's CNI_* environment and stdin, before any file or link is touched.

The rules of the reference skel (containernetworking/cni pkg/skel and pkg/utils), plus bounds,
because calicc turns these values into IPAM handles, endpoint records and API paths:

* CNI_CONTAINERID: `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (utils.ValidateContainerID), at most 256
  characters; ADD, DEL and CHECK need it.
* CNI_IFNAME: 1-15 bytes (IFNAMSIZ - 1), not "." or "..", no '/', ':' or whitespace
  (utils.ValidateInterfaceName); ADD, DEL and CHECK need it.
* CNI_NETNS: an absolute path (ADD needs it).
* CNI_ARGS: at most 4096 characters of `KEY=VALUE` items separated by ';'; K8S_POD_NAMESPACE is
  a DNS-1123 label, K8S_POD_NAME a DNS-1123 subdomain beside it, and alone (podman passes the
  container name, agent/cni/naming.py) a container name (the container id rule, 253 at most);
  K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID container-id-like.
* No value holds a control character.

A missing or bad variable is error 4 (INVALID_ENV) naming it. Stdin larger than thin.MAX_STDIN,
not JSON, or nested deeper than 32 levels is error 6; a netconf whose fields calicc reads have
the wrong type or shape is error 7 naming the field (agent/cni/netconf.py). Messages quote at
most 80 characters of a value (see `shown`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from calicc.agent.cni.errors import DECODE_FAILURE, INVALID_ENV, CniError
from calicc.agent.cni.thin import MAX_STDIN
from calicc.contract.names import IFNAMSIZ
from calicc.contract.patterns import (
    ANY_CONTROL,
    CONTAINER_ID,
    CONTAINER_ID_MAX,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
)

NEEDS_CONTAINER = ("ADD", "DEL", "CHECK")
MAX_SHOWN = 80
MAX_ID = CONTAINER_ID_MAX
MAX_PATH = 4096
MAX_CNI_ARGS = 4096
MAX_DEPTH = 32
ARG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL = ANY_CONTROL
ID_RULE = "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$, at most 256 characters"


def shown(value: object) -> str:
    """Return how an error message quotes an input value: at most MAX_SHOWN characters of it.

    Objects and lists are named, never printed (they may hold anything, secrets included).

    Examples:
        >>> shown("eth0")
        "'eth0'"
        >>> shown("x" * 100)[-21:]
        "'... (100 characters)"
        >>> shown({"token": "s3cr3t"})
        'an object'
    """
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) <= MAX_SHOWN:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:MAX_SHOWN]!r}... ({len(text)} characters)"


def env_error(key: str, value: str, rule: str) -> CniError:
    """Return the INVALID_ENV error of variable `key`, quoting (a cut of) its value."""
    return CniError(INVALID_ENV, f"{key}={shown(value)} is invalid: {rule}")


def ifname_problem(name: str) -> str | None:
    """Return what makes `name` unusable as an interface name (utils.ValidateInterfaceName).

    Examples:
        >>> ifname_problem("eth0") is None
        True
        >>> ifname_problem("../x")
        "contains '/', ':' or whitespace"
    """
    if not name:
        return "is empty"
    if len(name.encode("utf-8", "surrogateescape")) > IFNAMSIZ:
        return f"is longer than {IFNAMSIZ} bytes (IFNAMSIZ - 1)"
    if name in (".", ".."):
        return "is . or .."
    if any(c in "/:" or c.isspace() for c in name):
        return "contains '/', ':' or whitespace"
    if CONTROL.search(name):
        return "contains a control character"
    return None


def _required(env: Mapping[str, str], key: str, command: str, needed: bool) -> str:
    value = env.get(key, "")
    if needed and not value:
        raise CniError(INVALID_ENV, f"{key} is not set; the runtime must set it for {command}")
    return value


def check_container_id(key: str, value: str) -> None:
    """Fail with INVALID_ENV unless `value` is a valid container id (utils.ValidateContainerID)."""
    if len(value) > MAX_ID or not CONTAINER_ID.fullmatch(value):
        raise env_error(key, value, ID_RULE)


def check_env(env: Mapping[str, str], command: str) -> None:
    """Validate the CNI_* variables `command` reads (INVALID_ENV naming the variable)."""
    needs = command in NEEDS_CONTAINER
    container = _required(env, "CNI_CONTAINERID", command, needs)
    if container:
        check_container_id("CNI_CONTAINERID", container)
    ifname = _required(env, "CNI_IFNAME", command, needs)
    problem = ifname_problem(ifname) if ifname or needs else None
    if problem is not None:
        raise env_error("CNI_IFNAME", ifname, f"the interface name {problem}")
    netns = _required(env, "CNI_NETNS", command, command == "ADD")
    if netns and (not netns.startswith("/") or len(netns) > MAX_PATH or CONTROL.search(netns)):
        raise env_error("CNI_NETNS", netns, "must be the absolute path of a network namespace")


def _check_k8s_args(pairs: Mapping[str, str]) -> None:
    pod_name = (
        ("K8S_POD_NAME", DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain (a-z, 0-9, '-', '.')")
        if pairs.get("K8S_POD_NAMESPACE")
        else ("K8S_POD_NAME", CONTAINER_ID, 253, "a container name that matches "
              "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$, at most 253 characters")
    )  # fmt: skip
    rules = (
        ("K8S_POD_NAMESPACE", DNS1123_LABEL, 63, "a DNS-1123 label (a-z, 0-9, '-'; 63 at most)"),
        pod_name,
        ("K8S_POD_INFRA_CONTAINER_ID", CONTAINER_ID, MAX_ID, f"a container id that {ID_RULE}"),
        ("K8S_POD_UID", CONTAINER_ID, MAX_ID, f"a uid that {ID_RULE}"),
    )
    for key, pattern, limit, what in rules:
        value = pairs.get(key, "")
        if value and (len(value) > limit or not pattern.fullmatch(value)):
            raise env_error(f"CNI_ARGS {key}", value, f"must be {what}")


def parse_cni_args(text: str) -> dict[str, str]:
    """Parse and validate CNI_ARGS (`K=V;K=V`).

    Examples:
        >>> parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web-0")
        {'IgnoreUnknown': '1', 'K8S_POD_NAME': 'web-0'}
    """
    if len(text) > MAX_CNI_ARGS:
        raise env_error("CNI_ARGS", text, f"longer than {MAX_CNI_ARGS} characters")
    pairs: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not ARG_KEY.fullmatch(key) or CONTROL.search(value):
            raise env_error("CNI_ARGS", text, f"item {shown(item)} is not KEY=VALUE")
        pairs[key] = value
    _check_k8s_args(pairs)
    return pairs


def nesting(value: Any) -> int:
    """Return how deeply objects and lists nest in `value` (counting stops past MAX_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def decode_conf(stdin: bytes) -> dict[str, Any]:
    """Decode the netconf JSON object from stdin (DECODE_FAILURE when it is not one)."""
    if len(stdin) > MAX_STDIN:
        raise CniError(
            DECODE_FAILURE, f"network configuration on stdin is larger than {MAX_STDIN} bytes"
        )
    try:
        conf = json.loads(stdin or b"{}")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "nests too deeply" if isinstance(exc, RecursionError) else f"is not JSON: {exc}"
        raise CniError(DECODE_FAILURE, f"network configuration on stdin {reason}") from exc
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "network configuration on stdin must be a JSON object")
    if nesting(conf) > MAX_DEPTH:
        raise CniError(
            DECODE_FAILURE, f"network configuration on stdin nests deeper than {MAX_DEPTH} levels"
        )
    return conf
