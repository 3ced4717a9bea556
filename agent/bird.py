"""BIRD control: install bird.conf and its password includes, check, start or reconfigure.

Everything lives under --root: the config (etc/calicc/bird/), the control socket and pid file
(var/run/calicc/). BIRD is started only when it is not running, and `birdc configure` is run only
when a file it reads changed: an unchanged node runs no BIRD command at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.bundle import Bundle
from calicc.agent.files import under, write_if_changed
from calicc.agent.runner import Runner
from calicc.contract.manifest import NodeManifest, SecretRef
from calicc.contract.names import BIRD_CONFIG, install_path

DEFAULT_CONF = install_path(BIRD_CONFIG)


@dataclass(frozen=True)
class BirdPaths:
    """Where one node's BIRD keeps its files."""

    conf: Path
    sock: Path
    pid: Path

    @classmethod
    def under(cls, root: Path, conf_rel: str = DEFAULT_CONF) -> BirdPaths:
        """Return the paths below `root`."""
        run = under(root, "var/run/calicc")
        return cls(under(root, conf_rel), run / "bird.ctl", run / "bird.pid")


def node_paths(root: Path, manifest: NodeManifest) -> BirdPaths:
    """Return the paths of the node's BIRD below `root` (bird.conf where node.json installs it)."""
    entry = manifest.files.get(manifest.bird.config)
    return BirdPaths.under(root, entry.install if entry and entry.install else DEFAULT_CONF)


def secret_value(name: str, ref: SecretRef, env: Mapping[str, str], root: Path) -> str:
    """Return a secret from the agent's environment or a file (first line) under the root."""
    if ref.env is not None:
        if ref.env not in env:
            raise AgentError(f"BGP password {name}: environment variable {ref.env} is not set")
        return env[ref.env]
    path = under(root, str(ref.file))
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise AgentError(f"BGP password {name}: cannot read a first line from {path}") from exc


def password_include(value: str) -> str:
    """Return the text of a BIRD include holding a password statement."""
    if '"' in value or "\n" in value:
        raise AgentError("a BGP password must not contain a double quote or a newline")
    return f'password "{value}";\n'


def running_pid(paths: BirdPaths) -> int | None:
    """Return the pid of this node's BIRD if it runs (pid file and live process and socket)."""
    try:
        pid = int(paths.pid.read_text(encoding="ascii").split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid if paths.sock.exists() else None


def install_config(  # noqa: PLR0917 - the includes are the one addition
    runner: Runner,
    bundle: Bundle,
    paths: BirdPaths,
    env: Mapping[str, str],
    root: Path,
    includes: Mapping[str, str] | None = None,
) -> bool:
    """Write the includes and bird.conf (checked with `bird -p` first); return changed.

    `includes` are the agent's own (the Local Service routes, agent/services.py): path
    relative to bird.conf -> text, written before bird.conf is checked.
    """
    section = bundle.manifest.bird
    changed = False
    for rel, ref in sorted(section.secrets.items()):
        text = password_include(secret_value(rel, ref, env, root))
        changed |= write_if_changed(paths.conf.parent / rel, text.encode(), mode=0o600)
    for rel, text in sorted((includes or {}).items()):
        changed |= write_if_changed(paths.conf.parent / rel, text.encode())
    data = bundle.text(section.config).encode()
    try:
        if paths.conf.read_bytes() == data:
            return changed
    except FileNotFoundError:
        pass
    candidate = paths.conf.with_name(paths.conf.name + ".new")
    write_if_changed(candidate, data)
    runner.run(["bird", "-p", "-c", str(candidate)])
    candidate.replace(paths.conf)
    return True


def reconcile_bird(
    runner: Runner,
    bundle: Bundle,
    root: Path,
    env: Mapping[str, str],
    includes: Mapping[str, str] | None = None,
) -> list[str]:
    """Install BIRD's config (and the agent's `includes`); start or reconfigure BIRD if needed."""
    if not bundle.manifest.bird.enabled:
        return []
    paths = node_paths(root, bundle.manifest)
    changed = install_config(runner, bundle, paths, env, root, includes)
    if running_pid(paths) is None:
        paths.sock.parent.mkdir(parents=True, exist_ok=True)
        args = ["bird", "-c", str(paths.conf), "-s", str(paths.sock), "-P", str(paths.pid)]
        runner.run(args, write=True)
        return ["bird: started"]
    if not changed:
        return []
    out = runner.run(["birdc", "-s", str(paths.sock), "configure"], write=True)
    if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
        raise AgentError(f"birdc configure did not reconfigure BIRD: {out.strip()}")
    return ["bird: reconfigured"]
