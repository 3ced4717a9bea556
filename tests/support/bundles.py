"""Helpers of the agent's real tests: node namespaces, the examples' rendered bundles, copies of
them (self-contained: node files, node.json and the cluster part under cluster/) with a specific
(e.g. broken) input, snapshots of foreign state.

A bundle's roles (the routes script, sysctl file, conflist and iptables rules: contract/names.py)
are no files of its own: node.json names the shared cluster file holding each (`source`), and
these helpers read and replace a role's text there (`role_source`, `role_text`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from calicc.agent.bundle import file_digest, load_bundle
from calicc.agent.bundle_files import cluster_base
from calicc.contract.manifest import NodeFile, NodeManifest
from calicc.contract.names import (
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    IPTABLES_FILE,
    MANIFEST,
    is_cluster_file,
)
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import EXAMPLES

MakeNs = Callable[[str], str]


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


def seed_foreign(ns: str, via: str = "192.168.49.1") -> None:
    """Add Docker- and kube-proxy-like rules, a kube-proxy ipset and foreign routes (via `via`)."""
    ns_run(ns, ["iptables-restore", "--noflush"], input_text=FOREIGN_SEED)
    ns_run(ns, ["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"])
    ns_run(ns, ["ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.1,tcp:443"])
    ns_run(ns, ["ip", "route", "add", "10.99.0.0/24", "via", via, "proto", "static"])
    ns_run(ns, ["ip", "route", "add", "blackhole", "10.98.0.0/24"])


def foreign_rules(saved: str) -> list[str]:
    """Return the lines of iptables-save output that are not the project's, table by table.

    A table holding nothing but empty built-in chains is left out: iptables-nft keeps a table
    once anything was written to it, which changes no rule of anyone.
    """
    kept: list[str] = []
    for block in saved.split("*")[1:]:
        lines = [ln for ln in block.splitlines() if ln and ln[0] != "#" and "cali" not in ln]
        if any(ln.startswith("-A ") or " - [" in ln for ln in lines):
            kept += [f"*{lines[0]}", *lines[1:]]
    return kept


def foreign_state(ns: str) -> list[str]:
    """Return every rule, chain, set and route that is not the project's."""
    rules = foreign_rules(ns_run(ns, ["iptables-save"]).stdout)
    sets = [ln for ln in ns_run(ns, ["ipset", "save"]).stdout.splitlines() if "cali" not in ln]
    routes = [
        ln for ln in ns_run(ns, ["ip", "route", "show"]).stdout.splitlines() if "proto 81" not in ln
    ]
    return rules + sets + routes


def rendered(example: str, node: str) -> Path:
    """Return an example's rendered bundle of `node` (examples/<example>/rendered/nodes/<node>)."""
    return EXAMPLES / example / "rendered" / "nodes" / node


def role_source(node_json: dict[str, Any], rel: str) -> str:
    """Return the bundle file holding `rel`: the source node.json names for a role, else `rel`."""
    return str(node_json["files"].get(rel, {}).get("source", rel))


def role_text(bundle: Path, rel: str) -> str:
    """Return the text of file or role `rel` of a bundle (a role's: its shared cluster file's)."""
    held = role_source(json.loads((bundle / MANIFEST).read_text()), rel)
    return ((cluster_base(bundle) if is_cluster_file(held) else bundle) / held).read_text()


def bundle_files(source: Path) -> dict[str, str]:
    """Return every file of bundle `source`: the node's and its cluster part's (`cluster/...`).

    `source` is a node directory of a rendered tree or a self-contained bundle. Roles are not
    files: their sources are among the cluster part's.
    """
    data = json.loads((source / MANIFEST).read_text())
    base = cluster_base(source)
    index = json.loads((base / CLUSTER_INDEX).read_text())
    own = [rel for rel, entry in data["files"].items() if "source" not in entry]
    files = {rel: (source / rel).read_text() for rel in own if not is_cluster_file(rel)}
    files.update({rel: (base / rel).read_text() for rel in [CLUSTER_INDEX, *index["files"]]})
    return {**files, MANIFEST: (source / MANIFEST).read_text()}


def dump(data: Any) -> str:
    """Return JSON as the compiler writes it (sorted keys, indented, final newline)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def redigest(files: dict[str, str]) -> dict[str, str]:
    """Return `files` (a bundle) with node.json and cluster/index.json naming their digests."""
    node, index = json.loads(files[MANIFEST]), json.loads(files[CLUSTER_INDEX])
    for rel, text in files.items():
        for lister in (node, index):
            if rel in lister["files"]:
                lister["files"][rel]["digest"] = file_digest(text.encode())
    NodeFile.model_validate(node)
    return {**files, MANIFEST: dump(node), CLUSTER_INDEX: dump(index)}


def write_tree(directory: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path -> text) under `directory`."""
    for rel, text in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)


def derive_bundle(
    source: Path,
    directory: Path,
    *,
    iptables: str | None = None,
    texts: dict[str, str] | None = None,
    policy: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    **update: Any,
) -> None:
    """Copy a bundle to `directory`, self-contained (its cluster part under cluster/), with files
    (`texts`, node or `cluster/...` paths or roles; `iptables`, the rules role), node.json keys
    (`update`), cluster/policy.json keys (`policy`: ipsets, policies) and cluster/cluster.json
    keys (`settings`: pools, jump_rules) replaced.

    A role's text replaces its source, the shared cluster file node.json names for it. Only for
    the inputs a test needs on purpose (broken rules, an emptied node, a new route); digests are
    recomputed so the agent accepts the copy.
    """
    files = bundle_files(source)
    node = json.loads(files[MANIFEST])
    replaced = {**(texts or {}), **({IPTABLES_FILE: iptables} if iptables is not None else {})}
    files.update({role_source(node, rel): text for rel, text in replaced.items()})
    if policy:
        files[CLUSTER_POLICY] = dump({**json.loads(files[CLUSTER_POLICY]), **policy})
    if settings:
        files[CLUSTER_SETTINGS] = dump({**json.loads(files[CLUSTER_SETTINGS]), **settings})
    if update:
        files[MANIFEST] = dump({**json.loads(files[MANIFEST]), **update})
    write_tree(directory, redigest(files))


V6_POOL = {
    "name": "default-ipv6-ippool",
    "cidr": "fd00:10:244::/48",
    "encapsulation": "none",
    "mode": "Never",
    "nat_outgoing": False,
}


def dual_stack_bundle(
    source: Path,
    directory: Path,
    *,
    block: str = "fd00:10:244::/122",
    address_v6: str = "fd00:192:168:49::2/64",
    ipv4: bool = True,
) -> None:
    """Copy bundle `source` to `directory` with an IPv6 pool serving the node, one IPv6 `block`
    of it and the node's `address_v6` (docs/ipv6.md), until the compiler writes such bundles.

    `ipv4=False` drops the node's IPv4 blocks and pools (an IPv6-only node's pods).
    """
    files = bundle_files(source)
    node = json.loads(files[MANIFEST])
    settings = json.loads(files[CLUSTER_SETTINGS])
    name = str(V6_POOL["name"])
    derive_bundle(
        source,
        directory,
        settings={"pools": [*settings["pools"], V6_POOL]},
        node={**node["node"], "address_v6": address_v6},
        pools=[*(node["pools"] if ipv4 else []), name],
        blocks=[*(node["blocks"] if ipv4 else []), {"cidr": block, "pool": name}],
    )


def bundle_manifest(bundle: Path) -> NodeManifest:
    """Return the assembled manifest of a bundle (node.json with its cluster part)."""
    return load_bundle(bundle).manifest


def node_address(bundle: Path) -> str:
    """Return the node address (with prefix) a rendered bundle was compiled for."""
    return str(json.loads((bundle / "node.json").read_text())["node"]["address"])


def routed_node(make_ns: MakeNs, bundle: Path, address: str | None = None) -> tuple[str, str]:
    """A node namespace for a rendered bundle, behind a client namespace that is its router.

    The node holds the bundle's address (or `address`) on eth0 and a default route via the
    client (proxy ARP for pods needs one, see LAB-NOTES); the client routes the pools to the
    node. An IPIP bundle gets a tunl0 stand-in (an ifb device: no ipip module on this kernel;
    the agent accepts it with --allow-tunnel-standin). Returns (node, client).
    """
    node, client = make_ns("node"), make_ns("cl")
    address = address or node_address(bundle)
    gateway = str(next(IPv4Interface(address).network.hosts()))
    veth_between(node, "eth0", client, "up0")
    ns_run(node, ["ip", "addr", "add", address, "dev", "eth0"])
    ns_run(node, ["ip", "route", "add", "default", "via", gateway])
    links = json.loads((bundle / "node.json").read_text())["links"]
    if any(link["kind"] == "ipip" for link in links):
        ns_run(node, ["ip", "link", "add", "tunl0", "type", "ifb"])
    prefix = IPv4Interface(address).network.prefixlen
    ns_run(client, ["ip", "addr", "add", f"{gateway}/{prefix}", "dev", "up0"])
    for pool in bundle_manifest(bundle).pools:
        ns_run(client, ["ip", "route", "add", str(pool.cidr), "via", address.split("/")[0]])
    return node, client


def stop_bird(root: Path) -> None:
    """Stop the BIRD an apply under `root` started (by the PID in its pid file), if any."""
    path = root / "var/run/calicc/bird.pid"
    if path.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(path.read_text().split()[0]), signal.SIGTERM)
