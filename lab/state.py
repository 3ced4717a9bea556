"""What a running lab is made of, recorded in <root>/state.json.

Any later process (`check`, `down`, a test) finds the lab there, also after the process that
made it crashed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from calicc.contract.names import V6
from calicc.lab.names import check_lab_name

DEFAULT_BASE = Path("/run/calicc-lab")
STATE_FILE = "state.json"


@dataclass
class Proc:
    """A process the lab started: its PID and a string unique to it in its command line."""

    pid: int
    match: str


@dataclass(frozen=True)
class Pod:
    """A test pod: its node, Kubernetes namespace, network namespace, container id, addresses.

    `address` is the first address CNI gave (the IPv4 one in a dual-stack cluster), `address_v6`
    the IPv6 one when it has one (then equal to `address` in an IPv6-only cluster).

    A pod of the cluster's pods file (lab/filepods.py) has its Kubernetes name in `kube_name`
    (`name` is the lab's key for it), the file's labels and namespace labels, which the
    runtime passes to CNI, and its named container ports; the lab's own pods have none of these
    (lab/pods.py `pod_labels`).
    """

    name: str
    node: str
    namespace: str
    netns: str
    container_id: str
    address: str = ""  # empty until CNI ADD succeeded
    address_v6: str = ""
    kube_name: str = ""  # empty: `name`
    labels: dict[str, str] | None = field(default=None, hash=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[tuple[str, int, str], ...] = field(default=(), hash=False)  # (name, port, proto)

    @property
    def key(self) -> str:
        """Return `namespace/name`, how `calicc trace` and the pods file name the pod."""
        return f"{self.namespace}/{self.kube_name or self.name}"

    def address_of(self, version: int) -> str:
        """Return the pod's address of family `version` ("" if it has none)."""
        if version == V6:
            return self.address_v6
        return self.address if self.address and ":" not in self.address else ""


@dataclass
class LabState:
    """A lab: its name, input, root, processes, tunnel kind, pods and timings."""

    name: str
    cluster: str
    root: str
    procs: dict[str, Proc] = field(default_factory=dict)
    tunnel: str = "none"  # none | ipip | ifb (the stand-in: no IPIP packets flow)
    agent: bool = False
    pods: dict[str, Pod] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    gobgp_peers: list[str] = field(default_factory=list)  # external peers GoBGP plays (--gobgp)

    @property
    def path(self) -> Path:
        """Return the state file's path."""
        return Path(self.root) / STATE_FILE

    def save(self) -> None:
        """Write the state file (sorted keys, so it diffs cleanly)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


def lab_root(name: str, base: Path | None = None) -> Path:
    """Return the directory holding lab `name`'s files (configs, sockets, pid files, logs)."""
    return (base or DEFAULT_BASE) / check_lab_name(name)


def _pod(data: dict[str, Any]) -> Pod:
    ports = tuple((str(n), int(p), str(proto)) for n, p, proto in data.pop("ports", ()))
    return Pod(**data, ports=ports)


def load_state(root: Path) -> LabState | None:
    """Return the recorded state under `root`, or None when there is none."""
    path = root / STATE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    procs = {k: Proc(**v) for k, v in data.pop("procs").items()}
    pods = {k: _pod(v) for k, v in data.pop("pods", {}).items()}
    return LabState(procs=procs, pods=pods, **data)
