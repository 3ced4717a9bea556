"""Helpers of the agent's real tests: node namespaces, the examples' rendered bundles, bundles
built from the minikube example with a specific (e.g. broken) input, snapshots of foreign state."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from agent.bundle import file_digest
from compiler.build import compile_cluster, load_cluster
from compiler.model.manifest import FileEntry, NodeManifest
from lab.netns import ns_run, veth_between
from tests.conftest import EXAMPLES

MakeNs = Callable[[str], str]
NODE = "minikube"
IPTABLES = """*filter
:cali-INPUT - [0:0]
:cali-FORWARD - [0:0]
:cali-pi-web - [0:0]
-A cali-INPUT -m set --match-set cali40all-hosts-net src -p 4 -j ACCEPT
-A cali-FORWARD -j cali-pi-web
-A cali-pi-web -p tcp --dport 80 -m comment --comment "policy web" -j ACCEPT
COMMIT
*nat
:cali-POSTROUTING - [0:0]
:cali-nat-outgoing - [0:0]
-A cali-POSTROUTING -j cali-nat-outgoing
-A cali-nat-outgoing -m set --match-set cali40masq-ipam-pools src {NOT_ALL} -j MASQUERADE
COMMIT
""".replace("{NOT_ALL}", "-m set ! --match-set cali40all-ipam-pools dst")
EXTRA: dict[str, Any] = {
    "ipsets": [
        {"name": "cali40all-ipam-pools", "type": "hash:net", "members": ["10.244.0.0/16"]},
        {"name": "cali40masq-ipam-pools", "type": "hash:net", "members": ["10.244.0.0/16"]},
        {
            "name": "cali40all-hosts-net",
            "type": "hash:net",
            "members": ["192.168.49.3/32", "192.168.49.4/32"],
        },
    ],
    "jump_rules": [
        {"table": "filter", "chain": "INPUT", "rule": "-j cali-INPUT"},
        {"table": "filter", "chain": "FORWARD", "rule": "-j cali-FORWARD"},
        {
            "table": "nat",
            "chain": "POSTROUTING",
            "rule": "-j cali-POSTROUTING",
            "position": "bottom",
        },
    ],
}


def example_node_files() -> dict[str, str]:
    """Return the minikube node's rendered files (node.json included)."""
    compiled = compile_cluster(load_cluster(EXAMPLES / "minikube-ipip" / "cluster.yaml"))
    prefix = f"nodes/{NODE}/"
    return {k[len(prefix) :]: v for k, v in compiled.files.items() if k.startswith(prefix)}


def write_bundle(
    directory: Path, iptables: str = IPTABLES, bird: bool = False, **update: Any
) -> NodeManifest:
    """Write a bundle: the rendered example node plus EXTRA/`update`, digests recomputed."""
    files = example_node_files()
    data = json.loads(files.pop("node.json"))
    data.update(EXTRA)
    data.update(update)
    data["bird"]["enabled"] = bird
    files["iptables/iptables.rules"] = iptables
    for rel, text in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)
    entries = {rel: data["files"].get(rel, {}) for rel in files}
    data["files"] = {
        rel: FileEntry(digest=file_digest(text.encode()), install=entries[rel].get("install"))
        for rel, text in files.items()
    }
    manifest = NodeManifest.model_validate(data)
    (directory / "node.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def node_ns(make_ns: MakeNs, suffix: str = "node", address: str = "192.168.49.2/24") -> str:
    """A node namespace: eth0 (veth to a peer end) with `address`, and a tunl0 stand-in.

    This kernel has no ipip module, so tunl0 is an ifb device (the agent accepts it only with
    --allow-tunnel-standin).
    """
    ns = make_ns(suffix)
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
    ns_run(ns, ["ip", "addr", "add", address, "dev", "eth0"])
    for dev in ("eth0", "peer0"):
        ns_run(ns, ["ip", "link", "set", dev, "up"])
    ns_run(ns, ["ip", "link", "add", "tunl0", "type", "ifb"])
    return ns


def calicc(ns: str, *args: str, check: bool = True) -> Any:
    """Run the calicc executable of this venv inside `ns`."""
    exe = str(Path(__import__("sys").executable).parent / "calicc")
    return ns_run(ns, [exe, *args], check=check)


def apply(ns: str, bundle: Path, root: Path, log: Path, *extra: str) -> Any:
    """Run `calicc apply` in `ns` with a stand-in tunl0 and a command log; return the result."""
    args = ["apply", "--bundle", str(bundle), "--root", str(root), "--command-log", str(log)]
    return calicc(ns, *args, "--allow-tunnel-standin", *extra, check=False)


def writes(log: Path) -> list[list[str]]:
    """Return the state-changing commands of a command log."""
    return list(json.loads(log.read_text())["writes"])


FOREIGN_SEED = """*filter
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
"""


def seed_foreign(ns: str) -> None:
    """Add Docker- and kube-proxy-like rules, a kube-proxy ipset and foreign routes."""
    ns_run(ns, ["iptables-restore", "--noflush"], input_text=FOREIGN_SEED)
    ns_run(ns, ["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"])
    ns_run(ns, ["ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.1,tcp:443"])
    ns_run(ns, ["ip", "route", "add", "10.99.0.0/24", "via", "192.168.49.1", "proto", "static"])
    ns_run(ns, ["ip", "route", "add", "blackhole", "10.98.0.0/24"])


def foreign_state(ns: str) -> list[str]:
    """Return every rule, chain, set and route that is not the project's."""
    rules = [
        line
        for line in ns_run(ns, ["iptables-save"]).stdout.splitlines()
        if line and line[0] not in "#" and "cali" not in line
    ]
    sets = [ln for ln in ns_run(ns, ["ipset", "save"]).stdout.splitlines() if "cali" not in ln]
    routes = [
        ln for ln in ns_run(ns, ["ip", "route", "show"]).stdout.splitlines() if "proto 81" not in ln
    ]
    return rules + sets + routes


def rendered(example: str, node: str) -> Path:
    """Return an example's rendered bundle of `node` (examples/<example>/rendered/nodes/<node>)."""
    return EXAMPLES / example / "rendered" / "nodes" / node


def node_address(bundle: Path) -> str:
    """Return the node address (with prefix) a rendered bundle was compiled for."""
    return str(json.loads((bundle / "node.json").read_text())["node"]["address"])


def routed_node(make_ns: MakeNs, bundle: Path) -> tuple[str, str]:
    """A node namespace for a rendered bundle, behind a client namespace that is its router.

    The node holds the bundle's address on eth0 and a default route via the client (proxy ARP
    for pods needs one, see LAB-NOTES); the client routes the pools to the node. Returns
    (node, client).
    """
    node, client = make_ns("node"), make_ns("cl")
    address = node_address(bundle)
    gateway = str(next(IPv4Interface(address).network.hosts()))
    veth_between(node, "eth0", client, "up0")
    ns_run(node, ["ip", "addr", "add", address, "dev", "eth0"])
    ns_run(node, ["ip", "route", "add", "default", "via", gateway])
    ns_run(node, ["ip", "link", "add", "tunl0", "type", "ifb"])
    prefix = IPv4Interface(address).network.prefixlen
    ns_run(client, ["ip", "addr", "add", f"{gateway}/{prefix}", "dev", "up0"])
    for pool in json.loads((bundle / "node.json").read_text())["pools"]:
        ns_run(client, ["ip", "route", "add", pool["cidr"], "via", address.split("/")[0]])
    return node, client


def stop_bird(root: Path) -> None:
    """Stop the BIRD an apply under `root` started (by the PID in its pid file), if any."""
    path = root / "var/run/calicc/bird.pid"
    if path.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(path.read_text().split()[0]), signal.SIGTERM)
