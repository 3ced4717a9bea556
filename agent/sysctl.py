"""Kernel parameters under /proc/sys of the agent's network namespace."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from calicc.agent import AgentError

PROC_SYS = Path("/proc/sys")


def sysctl_path(key: str, base: Path = PROC_SYS) -> Path:
    """Return the /proc/sys file of `key`.

    Dotted keys are split on dots; keys holding a slash (needed when an interface name has a
    dot, e.g. "net/ipv4/conf/vxlan.calico/rp_filter") are taken as paths.

    Examples:
        >>> str(sysctl_path("net.ipv4.ip_forward"))
        '/proc/sys/net/ipv4/ip_forward'
        >>> str(sysctl_path("net/ipv4/conf/vxlan.calico/rp_filter"))
        '/proc/sys/net/ipv4/conf/vxlan.calico/rp_filter'
    """
    rel = key if "/" in key else key.replace(".", "/")
    return base / rel


def read_sysctls(keys: list[str], base: Path = PROC_SYS) -> dict[str, str | None]:
    """Return the current value of each key (None when the file does not exist)."""
    values: dict[str, str | None] = {}
    for key in keys:
        try:
            text = sysctl_path(key, base).read_text(encoding="ascii")
        except FileNotFoundError:
            values[key] = None
            continue
        values[key] = " ".join(text.split())
    return values


def diff_sysctls(desired: Mapping[str, str], current: Mapping[str, str | None]) -> list[str]:
    """Return the keys whose current value differs from the desired one (whitespace-normalised).

    Examples:
        >>> diff_sysctls({"a": "1", "b": "0  1"}, {"a": "1", "b": "0 1"})
        []
        >>> diff_sysctls({"a": "1"}, {"a": "0"})
        ['a']
    """
    return sorted(k for k, v in desired.items() if " ".join(v.split()) != current.get(k))


def apply_sysctls(
    desired: Mapping[str, str], base: Path = PROC_SYS, skip_missing: bool = False
) -> list[str]:
    """Write every sysctl that differs; return the changed keys.

    Args:
        desired: key -> value.
        base: the /proc/sys directory.
        skip_missing: leave out keys whose file does not exist yet (a device's settings
            before the device is created); otherwise a missing key is an error.
    """
    current = read_sysctls(sorted(desired), base)
    changed = diff_sysctls(desired, current)
    if skip_missing:
        changed = [k for k in changed if current[k] is not None]
    for key in changed:
        path = sysctl_path(key, base)
        try:
            path.write_text(desired[key] + "\n", encoding="ascii")
        except OSError as exc:
            raise AgentError(f"sysctl {key}={desired[key]}: cannot write {path}: {exc}") from exc
    return changed
