"""A minimal container runtime's CNI side: run an installed conflist's plugin chain.

It does what libcni (containerd, CRI-O, cnitool) does for one attachment: for ADD every plugin
of the list in order, each given the list's `name` and `cniVersion`, the previous plugin's
result as `prevResult`, and `runtimeConfig` holding only the capability arguments the plugin
declares in `capabilities`; for DEL the plugins in reverse order with the cached ADD result.
Executables are looked up in CNI_PATH. The plugins run inside the node's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_PLUGINS = Path("/usr/lib/cni")


class CniFailed(Exception):
    """A plugin of the chain failed (the message holds its error object)."""


@dataclass(frozen=True)
class Attachment:
    """One pod interface as the runtime sees it."""

    container_id: str
    netns: str  # a path, /var/run/netns/NAME
    ifname: str
    args: Mapping[str, str]  # CNI_ARGS, e.g. K8S_POD_NAMESPACE / K8S_POD_NAME
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def plugin_conf(
    conflist: Mapping[str, Any], plugin: Mapping[str, Any], att: Attachment, prev: Any
) -> dict[str, Any]:
    """Return the netconf one plugin of `conflist` receives on stdin (libcni's rules).

    Examples:
        >>> cl = {"name": "n", "cniVersion": "1.0.0"}
        >>> p = {"type": "x", "capabilities": {"labels": True, "portMappings": False}}
        >>> att = Attachment("c", "/ns", "eth0", {}, {"labels": {"a": "b"}, "other": 1})
        >>> plugin_conf(cl, p, att, None)["runtimeConfig"]
        {'labels': {'a': 'b'}}
    """
    conf = {**plugin, "name": conflist["name"], "cniVersion": conflist["cniVersion"]}
    declared = [k for k, on in dict(plugin.get("capabilities") or {}).items() if on]
    runtime = {k: att.capability_args[k] for k in declared if k in att.capability_args}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def find_plugin(kind: str, cni_path: tuple[Path, ...]) -> Path:
    """Return the first executable named `kind` in `cni_path` (as libcni's FindInPath)."""
    for directory in cni_path:
        path = directory / kind
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise CniFailed(f"CNI plugin {kind!r} not found in {':'.join(map(str, cni_path))}")


def _exec(
    ns: str, command: str, conf: dict[str, Any], att: Attachment, cni_path: tuple[Path, ...]
) -> Any:
    """Execute one plugin for `command` in namespace `ns`; return its parsed result or None."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": att.container_id,
        "CNI_NETNS": att.netns,
        "CNI_IFNAME": att.ifname,
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in sorted(att.args.items())),
        "CNI_PATH": ":".join(map(str, cni_path)),
    }
    exe = find_plugin(str(conf["type"]), cni_path)
    done = subprocess.run(
        ["ip", "netns", "exec", ns, str(exe)],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        check=False,
    )
    out = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        raise CniFailed(f"{conf['type']} {command} failed in {ns}: {out or done.stderr!r}")
    return json.loads(out) if out else None


def chain_add(
    ns: str, conflist: Mapping[str, Any], att: Attachment, cni_path: tuple[Path, ...]
) -> Any:
    """Run ADD through every plugin of `conflist`; return the final result (to cache for DEL)."""
    result = None
    for plugin in conflist["plugins"]:
        conf = plugin_conf(conflist, plugin, att, result)
        result = _exec(ns, "ADD", conf, att, cni_path)
    return result


def chain_del(
    ns: str,
    conflist: Mapping[str, Any],
    att: Attachment,
    cni_path: tuple[Path, ...],
    cached: Any,
) -> list[str]:
    """Run DEL through the plugins in reverse order; every plugin runs, errors are returned."""
    errors = []
    for plugin in reversed(conflist["plugins"]):
        conf = plugin_conf(conflist, plugin, att, cached)
        try:
            _exec(ns, "DEL", conf, att, cni_path)
        except CniFailed as exc:
            errors.append(str(exc))
    return errors
