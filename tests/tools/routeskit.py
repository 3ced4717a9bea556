"""Running cluster/routes.sh in a namespace, and reading back what it programmed.

Every node runs the cluster part's one routes script with its own name (`routes.sh NODE`); the
script reads the node table from the directory in CALICC_CLUSTER_DIR. What it programs is held
to the node's `NodeManifest` (node.json assembled with the cluster part, as the agent does):
the same tunnel devices, routes, neighbours and FDB entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calicc.compiler.build import Compiled
from calicc.contract.manifest import Link, NodeManifest, Route
from calicc.contract.names import CLUSTER_DIR, ROUTE_PROTOCOL, VXLAN_DEVICE, VXLAN_V6_DEVICE
from calicc.lab.netns import ns_run
from tests.tools.treekit import role_text

MakeNs = Callable[[str], str]
VXLAN_DEVICES = (VXLAN_DEVICE, VXLAN_V6_DEVICE)
STATE = (
    ["ip", "-d", "link", "show"],
    ["ip", "addr", "show"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "neigh", "show", "nud", "permanent"],
    ["bridge", "fdb", "show"],
)


def node_ns(make_ns: MakeNs, suffix: str, *addresses: str) -> str:
    """A node namespace whose eth0 (a veth to a throwaway peer) holds `addresses` (either family).

    Without IPv6 duplicate address detection: `state` compares `ip addr` output, which shows a
    link-local address as tentative for its first second or so.
    """
    ns = make_ns(suffix)
    for scope in ("all", "default"):
        ns_run(ns, ["sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"])
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
    for address in addresses:
        ns_run(ns, ["ip", "addr", "add", address, "dev", "eth0"])
    ns_run(ns, ["ip", "link", "set", "eth0", "up"])
    ns_run(ns, ["ip", "link", "set", "peer0", "up"])
    return ns


def write_cluster_part(compiled: Compiled, dest: Path) -> Path:
    """Write the compiled cluster part (routes.sh, nodes.tsv, shared files) under `dest`.

    Returns the cluster directory, as installed on a node (CALICC_CLUSTER_DIR).
    """
    for rel, text in compiled.files.items():
        if rel.startswith(CLUSTER_DIR + "/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(text, encoding="utf-8")
    return dest / CLUSTER_DIR


def routes_command(cluster_dir: Path, *args: str) -> list[str]:
    """Return how a node runs the installed routes script: `routes.sh NODE`.

    Its temporary files go to the cluster directory's sibling tmp/ (run_routes checks that
    the script leaves none).
    """
    script = str(cluster_dir / "routes.sh")
    tmp = cluster_dir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = [f"CALICC_CLUSTER_DIR={cluster_dir}", f"TMPDIR={tmp}"]
    return ["env", *env, "bash", script, *args]


def run_routes(ns: str, cluster_dir: Path, node: str) -> None:
    """Run routes.sh for `node` in `ns`: it succeeds, says nothing on stderr, leaves no file."""
    result = ns_run(ns, routes_command(cluster_dir, node), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert list((cluster_dir.parent / "tmp").iterdir()) == []


def shared_text(compiled: Compiled, node: str, role: str) -> str:
    """Return the text of the cluster file that plays `role` for `node` (node.json's source)."""
    return role_text(compiled.files, node, role)


def state(ns: str) -> list[str]:
    """Return everything routes.sh may touch, as text (a second run must not change it)."""
    return [ns_run(ns, cmd, check=False).stdout for cmd in STATE]


def owned_routes(ns: str, family: str) -> set[str]:
    """Return the routes of protocol ROUTE_PROTOCOL of `family` ("-4", "-6") as kernel_form()
    writes them (IPv6's metric, preference and a blackhole's lo left out)."""
    out = ns_run(ns, ["ip", family, "route", "show", "proto", str(ROUTE_PROTOCOL)]).stdout
    routes = set()
    for line in out.splitlines():
        words = line.split()
        for key in ("metric", "pref"):
            if key in words:
                at = words.index(key)
                del words[at : at + 2]
        routes.add(" ".join(words[:2] if words[0] == "blackhole" else words))
    return routes


def calicc_routes(ns: str) -> set[str]:
    """Return the owned routes of both families."""
    return owned_routes(ns, "-4") | owned_routes(ns, "-6")


def neighbours(ns: str) -> set[str]:
    """Return the permanent neighbours on both VXLAN devices."""
    found = set()
    for device in VXLAN_DEVICES:
        args = ["ip", "neigh", "show", "dev", device, "nud", "permanent"]
        result = ns_run(ns, args, check=False)
        found |= {line.strip() for line in result.stdout.splitlines()}
    return found


def fdb_entries(ns: str) -> set[str]:
    """Return the FDB entries with a remote destination on both VXLAN devices."""
    found = set()
    for device in VXLAN_DEVICES:
        result = ns_run(ns, ["bridge", "fdb", "show", "dev", device], check=False)
        found |= {line.strip() for line in result.stdout.splitlines() if " dst " in line}
    return found


def kernel_form(route: Route, device: str) -> str:
    """Return `route` as `ip route show` prints it (`device`: where an unnamed one resolves)."""
    if route.type == "blackhole":
        return f"blackhole {route.dst}"
    text = f"{route.dst} via {route.via} dev {route.dev or device}"
    return text + (" onlink" if route.onlink else "")


def link_json(ns: str, name: str) -> dict[str, Any] | None:
    """Return `ip -d -j link show` of device `name` with its addresses, or None when absent."""
    result = ns_run(ns, ["ip", "-d", "-j", "addr", "show", "dev", name], check=False)
    if result.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(result.stdout)[0]
    return found


def link_problems(ns: str, link: Link, parent: str) -> list[str]:
    """Return how device `link.name` differs from `link` (`parent`: where it must be attached)."""
    got = link_json(ns, link.name)
    if got is None:
        return [f"{link.name}: missing"]
    inet = "inet6" if link.address is not None and link.address.version == 6 else "inet"
    addresses = {
        f"{a['local']}/{a['prefixlen']}"
        for a in got.get("addr_info", ())
        if a["family"] == inet and a.get("scope") != "link"  # IPv6's link-local stays
    }
    facts = {
        "mtu": (got["mtu"], link.mtu),
        "up": ("UP" in got["flags"], True),
        "addresses": (addresses, {str(link.address)} if link.address else set()),
    }
    if link.kind == "vxlan":
        data = got["linkinfo"]["info_data"]
        facts |= {
            "vni": (data.get("id"), link.vni),
            "port": (data.get("port"), link.port),
            "local": (data.get("local", data.get("local6")), str(link.local)),
            "learning": (data.get("learning"), False),
            "mac": (got["address"], link.mac),
            "parent": (data.get("link"), link.parent or parent),
        }
    return [f"{link.name} {k}: {g!r}, want {w!r}" for k, (g, w) in facts.items() if g != w]


def assert_programs(ns: str, manifest: NodeManifest, device: str = "eth0") -> None:
    """Assert the namespace holds exactly the tunnel devices, routes, neighbours and FDB
    entries `manifest` says (`device`: the node's uplink, where unnamed routes resolve)."""
    problems = [p for link in manifest.links for p in link_problems(ns, link, device)]
    listed = {link.name for link in manifest.links}
    for vxlan in VXLAN_DEVICES:
        if vxlan not in listed and link_json(ns, vxlan) is not None:
            problems.append(f"{vxlan}: present, the manifest has none")
    assert problems == [], problems
    assert calicc_routes(ns) == {kernel_form(r, device) for r in manifest.routes}
    assert neighbours(ns) == {
        f"{n.address} lladdr {n.lladdr} PERMANENT" for n in manifest.neighbors
    }
    assert fdb_entries(ns) == {f"{f.lladdr} dst {f.dst} self permanent" for f in manifest.fdb}
