"""Shape checks of the netconf fields calicc reads, before any of them is used (error 7).

Each failure names the field as a dotted path (`ipam.state_dir`, `runtimeConfig.labels`,
`prevResult.ips[0].address`) and quotes at most a cut of a scalar value, never an object, and
nothing of a field whose name looks secret (token, password, key, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_interface
from pathlib import PurePosixPath
from typing import Any

from calicc.agent.cni.errors import INVALID_CONFIG, CniError
from calicc.agent.cni.validate import CONTROL, ID_RULE, MAX_ID, MAX_PATH, shown
from calicc.contract.patterns import CONTAINER_ID

LOCATIONS = ("root", "state_dir", "bundle", "nodename")
MAX_LABELS = 1024
MAX_LABEL_TEXT = 1024
SECRET = re.compile(r"token|passw|secret|key|cred|cert", re.IGNORECASE)
GC_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def field_error(path: str, expected: str, value: object) -> CniError:
    """Return the INVALID_CONFIG error of netconf field `path`."""
    got = "a value that is not shown" if SECRET.search(path.rsplit(".", 1)[-1]) else shown(value)
    return CniError(INVALID_CONFIG, f"netconf {path} must be {expected}, got {got}")


def _string(conf: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    value = conf.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise field_error(prefix + key, "a string", value)
    if len(value) > MAX_PATH:
        raise field_error(prefix + key, f"a string of {MAX_PATH} characters at most", value)
    if CONTROL.search(value):
        raise field_error(prefix + key, "a string without control characters", value)
    return value


def check_header(conf: Mapping[str, Any]) -> None:
    """Require string `cniVersion` and `type`, and a valid network `name`."""
    for key in ("cniVersion", "name", "type"):
        if not _string(conf, key):
            raise CniError(INVALID_CONFIG, f"network configuration needs a string {key!r}")
    name = str(conf["name"])
    if len(name) > MAX_ID or not CONTAINER_ID.fullmatch(name):
        raise field_error("name", f"a network name that {ID_RULE}", name)


def check_locations(conf: Mapping[str, Any], prefix: str = "") -> None:
    """Require an absolute `root`, `state_dir` and `bundle` without '..', a string `nodename`."""
    for key in LOCATIONS:
        value = _string(conf, key, prefix)
        if not value:
            continue
        if key == "root" and not value.startswith("/"):
            raise field_error(prefix + key, "an absolute path", value)
        if key in ("state_dir", "bundle") and ".." in PurePosixPath(value).parts:
            raise field_error(prefix + key, "a path without '..' (it lives under root)", value)


def check_mtu(conf: Mapping[str, Any]) -> None:
    """Require `mtu` absent, 0 (the node's pod MTU) or an integer 68-65535."""
    mtu = conf.get("mtu")
    if mtu in (None, 0) and not isinstance(mtu, bool):
        return
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:  # noqa: PLR2004
        raise field_error("mtu", "an integer 68-65535 (or 0 for the node's pod MTU)", mtu)


def _object(conf: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = conf.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise field_error(key, "an object", value)
    return value


def check_labels(runtime: Mapping[str, Any]) -> None:
    """runtimeConfig.labels and .namespaceLabels, when given, map strings to strings."""
    for key in ("labels", "namespaceLabels"):
        path, labels = f"runtimeConfig.{key}", runtime.get(key)
        if labels is None:
            continue
        if not isinstance(labels, dict):
            raise field_error(path, "an object of labels", labels)
        if len(labels) > MAX_LABELS:
            raise CniError(INVALID_CONFIG, f"netconf {path} has more than {MAX_LABELS} labels")
        for name, value in labels.items():
            if not isinstance(value, str) or max(len(name), len(value)) > MAX_LABEL_TEXT:
                raise field_error(f"{path}[{shown(name)}]", "a string label value", value)


def check_sections(conf: Mapping[str, Any]) -> None:
    """ipam, kubernetes and runtimeConfig are objects with well-typed fields calicc reads."""
    ipam = _object(conf, "ipam")
    _string(ipam, "type", "ipam.")
    check_locations(ipam, "ipam.")
    _string(_object(conf, "kubernetes"), "kubeconfig", "kubernetes.")
    check_labels(_object(conf, "runtimeConfig"))


def check_prev_result(conf: Mapping[str, Any]) -> tuple[IPv4Address | IPv6Address, ...]:
    """Return the pod's addresses in prevResult.ips (CHECK), IPv4 first: each entry valid.

    At most one of each family counts (the first): ADD gives a pod one of each.
    """
    prev = conf.get("prevResult")
    if not isinstance(prev, dict):
        raise field_error("prevResult", "the ADD result (an object; CHECK needs it)", prev)
    ips = prev.get("ips", [])
    if not isinstance(ips, list):
        raise field_error("prevResult.ips", "a list", ips)
    found: dict[int, IPv4Address | IPv6Address] = {}
    for number, entry in enumerate(ips):
        address = entry.get("address") if isinstance(entry, dict) else entry
        try:
            parsed = ip_interface(address) if isinstance(address, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise field_error(f"prevResult.ips[{number}].address", "an address/prefix", address)
        found.setdefault(parsed.version, parsed.ip)
    if not found:
        raise field_error("prevResult.ips", "a list holding the pod's addresses", ips)
    return tuple(found[version] for version in sorted(found))


def check_gc(conf: Mapping[str, Any]) -> None:
    """cni.dev/valid-attachments is a list of {containerID, ifname} with valid values."""
    key = next((k for k in GC_KEYS if k in conf), GC_KEYS[0])
    items = conf.get(key, [])
    if not isinstance(items, list):
        raise field_error(key, "a list", items)
    for number, item in enumerate(items):
        where = f"{key}[{number}]"
        if not isinstance(item, dict):
            raise field_error(where, "an object with containerID and ifname", item)
        container = item.get("containerID")
        if (
            not isinstance(container, str)
            or len(container) > MAX_ID
            or not CONTAINER_ID.fullmatch(container)
        ):
            raise field_error(f"{where}.containerID", f"a container id that {ID_RULE}", container)
        if not isinstance(item.get("ifname", ""), str):
            raise field_error(f"{where}.ifname", "a string", item["ifname"])


def check_conf(conf: Mapping[str, Any], command: str) -> None:
    """Validate every field calicc reads for `command` (INVALID_CONFIG naming the field).

    prevResult is CHECK's alone, checked by cmd_check once the version allows CHECK.
    """
    check_header(conf)
    check_locations(conf)
    check_mtu(conf)
    check_sections(conf)
    if command == "GC":
        check_gc(conf)
