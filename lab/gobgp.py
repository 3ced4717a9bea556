"""GoBGP (Debian's gobgpd) as an off-cluster route reflector in a lab namespace.

The config is written from Python: one neighbor per node, each a route-reflector client. A
reflector at an IPv6 address listens there and peers with the nodes' IPv6 addresses (gobgpd
gives a neighbor the unicast family of its address); its router id and cluster id are 32-bit.
gobgpd never touches the kernel here (no zebra); its RIB is read over gRPC on the namespace's
own loopback with `gobgp -j`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from calicc.lab.netns import ns_run
from calicc.lab.procs import alive, spawn_detached, stop_pid
from calicc.lab.rib import RibPath, standard_community
from calicc.lab.wait import poll

API_HOST = "127.0.0.1"
API_PORT = 50051
WAIT_S = 15.0
# gobgp -j prints the BGP FSM state as a number (RFC 4271 order) or a name.
FSM = {1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent", 5: "OpenConfirm", 6: "Established"}


@dataclass(frozen=True)
class Neighbor:
    """A gobgpd neighbor: a node's address and AS, and whether it is a reflector client.

    A neighbor in another AS than the speaker's is eBGP, multihop (as the lab's BIRD ToR is).
    """

    address: IPv4Address | IPv6Address
    as_number: int
    rr_client: bool = True
    ttl_security: int | None = None  # GTSM: the node is this many hops away (its ttl_security)


@dataclass(frozen=True)
class GobgpDaemon:
    """A running gobgpd: namespace, config file and PID."""

    ns: str
    conf: Path
    pid: int
    proc: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


def gobgp_config(
    router_id: IPv4Address,
    as_number: int,
    port: int,
    neighbors: tuple[Neighbor, ...],
    local: IPv4Address | IPv6Address | None = None,
) -> str:
    """Return gobgpd's TOML config: global settings and one neighbor per node, sorted.

    gobgpd listens on `local` (default: the router id, the reflector's IPv4 address).
    """
    lines = [
        "[global.config]",
        f"  as = {as_number}",
        f'  router-id = "{router_id}"',
        f"  port = {port}",
        f'  local-address-list = ["{local or router_id}"]',
    ]
    for n in sorted(neighbors, key=lambda x: (x.address.version, int(x.address))):
        lines += [
            "",
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{n.address}"',
            f"    peer-as = {n.as_number}",
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
        ]
        if n.ttl_security is not None:  # GTSM (RFC 5082): send TTL 255, accept 256 - hops up
            lines += [
                "  [neighbors.ttl-security.config]",
                "    enabled = true",
                f"    ttl-min = {256 - n.ttl_security}",
            ]
        elif n.as_number != as_number:  # eBGP: the speaker may be a router away from the node
            lines += [
                "  [neighbors.ebgp-multihop.config]",
                "    enabled = true",
                "    multihop-ttl = 255",
            ]
        if n.rr_client:
            lines += [
                "  [neighbors.route-reflector.config]",
                "    route-reflector-client = true",
                f'    route-reflector-cluster-id = "{router_id}"',
            ]
    return "\n".join(lines) + "\n"


def start_gobgpd(ns: str, conf: Path, log: Path, detach: bool = False) -> GobgpDaemon:
    """Start gobgpd in namespace `ns` with `conf`; return once its gRPC API answers.

    With `detach` it outlives this process (a lab); otherwise it is this process's child.
    """
    conf_check = subprocess.run(
        ["gobgpd", "-d", "-f", str(conf), "-t", "toml"], capture_output=True, text=True, check=False
    )
    if conf_check.returncode != 0:
        raise RuntimeError(f"gobgpd rejects {conf}: {conf_check.stdout}{conf_check.stderr}")
    args = [
        "ip",
        "netns",
        "exec",
        ns,
        "gobgpd",
        "-f",
        str(conf),
        "-t",
        "toml",
        "-p",
        "--pprof-disable",
        f"--api-hosts={API_HOST}:{API_PORT}",
    ]
    if detach:
        daemon = GobgpDaemon(ns=ns, conf=conf, pid=spawn_detached(args, log))
    else:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        daemon = GobgpDaemon(ns=ns, conf=conf, pid=proc.pid, proc=proc)
    poll(lambda: _api_up(ns) or not alive(daemon.pid), WAIT_S, f"gobgpd API in {ns}")
    if not alive(daemon.pid):
        raise RuntimeError(f"gobgpd in {ns} exited; see {log}")
    return daemon


def _api_up(ns: str) -> bool:
    return gobgp(ns, "global", check=False) is not None


def gobgp(ns: str, *command: str, check: bool = True) -> Any:
    """Run `gobgp -j COMMAND` against the daemon in `ns`; return parsed JSON (None on failure)."""
    args = ["gobgp", "-u", API_HOST, "-p", str(API_PORT), *command, "-j"]
    done = ns_run(ns, args, check=check)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout or "null")


def stop_gobgpd(daemon: GobgpDaemon) -> None:
    """Stop gobgpd by its PID (only if that PID still runs this config)."""
    stop_pid(daemon.pid, must_contain=str(daemon.conf))
    if daemon.proc is not None:
        daemon.proc.wait()


def neighbor_states(ns: str) -> dict[str, str]:
    """Return {neighbor address: session state} of the gobgpd in `ns`."""
    states = {}
    for peer in gobgp(ns, "neighbor") or []:
        address = peer["conf"]["neighbor_address"]
        raw = peer.get("state", {}).get("session_state", "unknown")
        states[address] = FSM.get(raw, str(raw)) if isinstance(raw, int) else str(raw).title()
    return states


def wait_neighbors(ns: str, timeout: float = WAIT_S) -> dict[str, str]:
    """Wait until every neighbor of the gobgpd in `ns` is established; return the states."""

    def probe() -> dict[str, str] | None:
        states = neighbor_states(ns)
        ok = states and all(s == "Established" for s in states.values())
        return states if ok else None

    return poll(
        probe,
        timeout,
        f"gobgpd neighbors established in {ns}",
        last=lambda: str(neighbor_states(ns)),
    )


def rib(ns: str) -> dict[str, set[str]]:
    """Return the global RIB of the gobgpd in `ns` as {prefix: {next hops}}."""
    table: dict[str, set[str]] = {}
    for prefix, paths in (gobgp(ns, "global", "rib") or {}).items():
        hops = table.setdefault(prefix, set())
        for path in paths:
            hops.update(_next_hops(path))
    return table


def _next_hops(path: dict[str, Any]) -> set[str]:
    hops = set()
    for attr in path.get("attrs", []):
        if "nexthop" in attr:
            hops.add(str(attr["nexthop"]))
    return hops


# GoBGP's path attribute type codes (RFC 4271, RFC 1997, RFC 4760, RFC 8092).
_AS_PATH, _NEXT_HOP, _MED, _LOCAL_PREF, _COMMUNITIES, _MP_REACH, _LARGE = 2, 3, 4, 5, 8, 14, 32


def rib_paths(ns: str) -> list[RibPath]:
    """Return every path in the global RIB of the gobgpd in `ns`, IPv4 and IPv6."""
    found = []
    for family in ("ipv4", "ipv6"):
        for prefix, paths in (gobgp(ns, "global", "rib", "-a", family) or {}).items():
            found += [_rib_path(prefix, path) for path in paths]
    return sorted(found, key=repr)


def _rib_path(prefix: str, path: dict[str, Any]) -> RibPath:
    attrs = {int(a["type"]): a for a in path.get("attrs", [])}
    hop = attrs.get(_NEXT_HOP) or attrs.get(_MP_REACH) or {}
    segments = attrs.get(_AS_PATH, {}).get("as_paths") or []
    large = attrs.get(_LARGE, {}).get("value") or []
    return RibPath(
        prefix=prefix,
        next_hop=str(hop.get("nexthop", "")),
        as_path=tuple(int(asn) for seg in segments for asn in seg.get("asns") or []),
        communities=tuple(
            standard_community(int(c)) for c in attrs.get(_COMMUNITIES, {}).get("communities", [])
        ),
        large_communities=tuple(f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}" for c in large),
        local_pref=attrs[_LOCAL_PREF]["value"] if _LOCAL_PREF in attrs else None,
        med=attrs[_MED]["metric"] if _MED in attrs else None,
    )
