"""Lab nodes for `calicc push` tests: a namespace per node with its address and a tunl0
stand-in, an inventory reaching them through the calicc_netns connection, and the BIRD daemons
`calicc apply` started stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from calicc.compiler.build import Inputs
from calicc.compiler.inventory import LabHost, build_inventory, dump_inventory
from calicc.lab.netns import ns_run

MakeNs = Callable[[str], str]


def node_ns(make_ns: MakeNs, suffix: str, address: str) -> str:
    """Make a node's namespace: eth0 holding `address`, and tunl0 as an ifb stand-in."""
    ns = make_ns(suffix)
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
    ns_run(ns, ["ip", "addr", "add", address, "dev", "eth0"])
    for dev in ("eth0", "peer0"):
        ns_run(ns, ["ip", "link", "set", dev, "up"])
    ns_run(ns, ["ip", "link", "add", "tunl0", "type", "ifb"])
    return ns


def lab_hosts(inputs: Inputs, make_ns: MakeNs, roots: Path, calicc_bin: str) -> dict[str, LabHost]:
    """Make a namespace per node of the cluster; return how the playbook reaches each."""
    hosts = {}
    for index, node in enumerate(sorted(inputs.spec.nodes, key=lambda n: n.name)):
        ns = node_ns(make_ns, f"n{index}", str(node.address))
        hosts[node.name] = LabHost(ns, str(roots / node.name), calicc_bin)
    return hosts


def write_inventory(inputs: Inputs, hosts: dict[str, LabHost], path: Path) -> Path:
    """Write the inventory of `hosts` to `path`."""
    path.write_text(dump_inventory(build_inventory(inputs.spec, hosts)))
    return path


def blackholes(ns: str) -> str:
    """Return the blackhole routes calicc programmed (protocol 81) in namespace `ns`."""
    return ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout


def stop_birds(roots: list[Path]) -> None:
    """Stop the BIRD daemons `calicc apply` started, by the pid files under each root."""
    for root in roots:
        pidfile = root / "var/run/calicc/bird.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
