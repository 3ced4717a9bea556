"""Running the calicc CNI plugin on hostile input inside throwaway namespaces, and proving that a
refusal is clean: the CNI code in a JSON error on stdout, a message naming the variable or field,
no traceback, no long value echoed, and nothing written or left behind (the node root's files,
IPAM state included, and the links, addresses and routes of the node and pod namespaces)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.agent.cni.node import ipam_store, load_manifest
from calicc.compiler.build import compile_cluster, load_cluster
from calicc.contract.names import CONFLIST
from calicc.lab.netns import ns_run
from tests.conftest import EXAMPLES
from tests.support.cni import write_bundle
from tests.support.hostile import (
    MEMORY_LIMIT,
    TIME_LIMIT,
    Outcome,
    Snapshot,
    assert_clean_error,
    assert_unchanged,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
NETWORK = "k8s-pod-network"
SEED = ("seed-0123456789", "10.244.0.1")  # an attachment already on the node before each case
Env = Mapping[str, str | bytes | None]


def limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def plugin_conf() -> dict[str, Any]:
    """Return the calicc plugin's netconf as libcni hands it over (the compiled conflist's)."""
    compiled = compile_cluster(load_cluster(EXAMPLES / "minikube-ipip" / "cluster.yaml"))
    node = json.loads(compiled.files["nodes/minikube/node.json"])
    conflist = json.loads(compiled.files[node["files"][CONFLIST]["source"]])  # the shared one
    plugin = {k: v for k, v in conflist["plugins"][0].items() if k != "capabilities"}
    return {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `changes` applied; a None value removes the key."""
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not None}


NET_VIEWS = (
    ("link", ["ip", "-o", "link", "show"]),
    ("addr", ["ip", "-o", "addr", "show"]),
    ("route", ["ip", "route", "show", "table", "all"]),
)


def net_state(ns: str) -> list[str]:
    """Return what a failed command must not change in `ns`: links, addresses, every route."""
    return [
        f"{view}: {line}"
        for view, args in NET_VIEWS
        for line in sorted(ns_run(ns, args).stdout.splitlines())
    ]


@dataclass
class Node:
    """A node namespace with a pod namespace, an installed bundle and IPAM holding SEED."""

    ns: str
    pod_ns: str
    root: Path
    conf: dict[str, Any] = field(default_factory=plugin_conf)

    @property
    def netns(self) -> str:
        return f"/var/run/netns/{self.pod_ns}"

    def env(self, command: str = "ADD", **changes: str | bytes | None) -> dict[str, str | bytes]:
        """Return the CNI_* variables a runtime sets for pod web-0, with `changes` applied."""
        env: dict[str, str | bytes | None] = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "c0ffee",
            "CNI_IFNAME": "eth0",
            "CNI_NETNS": self.netns,
            "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            "CNI_PATH": "/opt/cni/bin",
            **changes,
        }
        return {k: v for k, v in env.items() if v is not None}

    def run(
        self, env: Env, stdin: bytes, args: Iterable[str] = (), path: str | None = None
    ) -> Outcome:
        """Run the plugin (`python -I -m calicc.agent.cni.main plugin`, else `args`) in the node.

        `path` replaces PATH inside (the plugin then finds no iptables-save, for instance).
        """
        command = list(args) or [sys.executable, "-I", "-m", "calicc.agent.cni.main", "plugin"]
        full = {
            "PATH": path or os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "CALICC_ROOT": str(self.root),
            **env,
        }
        ip = shutil.which("ip") or "/usr/sbin/ip"
        done = subprocess.run(
            [ip, "netns", "exec", self.ns, *command],
            env=full,
            input=stdin,
            capture_output=True,
            timeout=TIME_LIMIT,
            preexec_fn=limit_memory,
            check=False,
            cwd="/",
        )
        return Outcome(
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def state(self) -> tuple[Snapshot, list[str], list[str]]:
        """Return the node's files (state, IPAM, bundle) and both namespaces' network state.

        The files under var/lib and etc: var/run holds the agent's socket, when it runs.
        """
        files = snapshot(self.root / "var/lib", self.root / "etc")
        return files, net_state(self.ns), net_state(self.pod_ns)


def make_node(make_ns: Callable[[str], str], tmp_path: Path) -> Node:
    """Create the namespaces and the node root; put SEED into IPAM, as a running pod would."""
    node = Node(make_ns("node"), make_ns("pod"), tmp_path / "root")
    bundle = write_bundle(node.root)
    state_dir = node.root / "var/lib/calicc"
    store = ipam_store(state_dir, load_manifest(bundle))
    held = store.assign(f"{NETWORK}.{SEED[0]}", SEED[0], "eth0", {"identity": "default.seed"})
    assert str(held.address) == SEED[1]
    (state_dir / "endpoints").mkdir(mode=0o700)
    return node


def assert_cni_error(
    outcome: Outcome, code: int, names: Iterable[str], never: Iterable[str] = ()
) -> dict[str, Any]:
    """The run failed with CNI `code` in a JSON error naming every one of `names`, cleanly."""
    exit_code = code if 0 < code < 256 else 1
    text = outcome.stdout + outcome.stderr
    assert_clean_error(outcome, code=exit_code, never=never, max_line=400)
    error: dict[str, Any] = json.loads(outcome.stdout)
    assert error["code"] == code, text
    message = error["msg"] + " " + error.get("details", "")
    for name in names:
        assert name in message, f"no {name!r} in {message!r}"
    return error


def assert_refused_cleanly(
    node: Node,
    env: Env,
    stdin: bytes,
    code: int,
    *,
    names: Iterable[str],
    never: Iterable[str] = (),
) -> dict[str, Any]:
    """Run one hostile invocation and check the answer and that nothing changed."""
    before = node.state()
    error = assert_cni_error(node.run(env, stdin), code, names, never)
    after = node.state()
    assert_unchanged(before[0], after[0])
    assert before[1:] == after[1:], "links, addresses or routes changed"
    return error
