"""One CNI invocation: the CNI_* environment and the network configuration from stdin.

The netconf keys calicc reads (all optional except `cniVersion`, `name`, `type`):

* `nodename`: the node, checked against node.json's node name (the compiled conflist, shared
  by every node of one pod MTU, leaves it out: the node is the installed bundle's);
* `state_dir` (default `/var/lib/calicc`): runtime state, IPAM in `ipam/`;
* `bundle` (default `/etc/calicc/bundle/node.json`): the installed node.json (or its directory);
* `mtu`: the pod MTU (default node.json's `pod_mtu`);
* `root`: a prefix for `state_dir` and `bundle`, so several lab nodes share one machine. The
  launcher the agent installs under `<root>/opt/cni/bin` (and the agent's socket server) supply
  it, so the compiled conflist is installed unchanged; an explicit netconf `root` wins;
* `kubernetes.kubeconfig`: read pod labels from the API server;
* `runtimeConfig.labels` / `runtimeConfig.namespaceLabels`: pod labels for runtimes without
  Kubernetes (the lab).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.agent.cni.errors import INVALID_ENV, CniError
from calicc.agent.cni.netconf import check_conf
from calicc.agent.cni.validate import NEEDS_CONTAINER, check_env, decode_conf, parse_cni_args, shown
from calicc.contract.names import BUNDLE_MANIFEST, MANIFEST, STATE_DIR

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")


@dataclass(frozen=True)
class Request:
    """A parsed invocation; `conf` is the raw netconf mapping (with prevResult, if any)."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    conf: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    default_root: str = "/"

    @property
    def cni_version(self) -> str:
        """Return the netconf's cniVersion (an absent one means 0.2.0, as the spec says)."""
        return str(self.conf.get("cniVersion") or "0.2.0")

    @property
    def network(self) -> str:
        """Return the network name (the conflist's `name`)."""
        return str(self.conf.get("name", ""))

    @property
    def handle(self) -> str:
        """Return the IPAM handle, Calico style: `<network>.<containerID>`."""
        return f"{self.network}.{self.container_id}"

    @property
    def root(self) -> Path:
        """Return the path prefix of the state and bundle locations."""
        return Path(str(self.conf.get("root") or self.default_root))

    def _under_root(self, key: str, default: str) -> Path:
        value = str(self.conf.get(key) or default)
        return self.root / value.lstrip("/")

    @property
    def state_dir(self) -> Path:
        """Return the directory of calicc's runtime state (IPAM)."""
        return self._under_root("state_dir", STATE_DIR)

    @property
    def bundle(self) -> Path:
        """Return the installed node.json (a directory means its node.json)."""
        path = self._under_root("bundle", BUNDLE_MANIFEST)
        return path if path.suffix == ".json" else path / MANIFEST


def parse_conf(stdin: bytes) -> dict[str, Any]:
    """Decode the netconf JSON object from stdin (agent/cni/validate.py bounds it)."""
    return decode_conf(stdin)


def parse_request(env: Mapping[str, str], stdin: bytes, root: str = "") -> Request:
    """Build a Request from the environment and stdin, every value validated before any use.

    agent/cni/validate.py checks the CNI_* variables (error 4 naming the variable), stdin's size
    and JSON (6), agent/cni/netconf.py the fields calicc reads (7 naming the field): every path
    (standalone, the agent's socket, the launchers) comes through here first.
    `root` (else the CALICC_ROOT variable the launcher sets, else "/") prefixes the paths.
    """
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            INVALID_ENV, f"CNI_COMMAND={shown(command)}: expected one of {', '.join(COMMANDS)}"
        )
    check_env(env, command)
    args = parse_cni_args(env.get("CNI_ARGS", ""))
    conf = decode_conf(stdin) if command != "VERSION" or stdin.strip() else {}
    if command != "VERSION":
        check_conf(conf, command)
    return Request(
        command=command,
        container_id=env.get("CNI_CONTAINERID", "") if command in NEEDS_CONTAINER else "",
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=args,
        conf=conf,
        env={k: v for k, v in env.items() if k.startswith("CNI_")},
        default_root=root or env.get("CALICC_ROOT", "") or "/",
    )
