"""Real BIRD daemons in lab namespaces: start, query, wait, stop by PID.

Each daemon gets its own config, control socket and pid file, so many run on one machine.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.lab.procs import alive, spawn_detached, stop_pid
from calicc.lab.rib import RibPath
from calicc.lab.wait import poll

WAIT_S = 15.0


@dataclass(frozen=True)
class BirdDaemon:
    """A running BIRD: its namespace, files and PID (and its Popen when this process owns it)."""

    ns: str
    conf: Path
    sock: Path
    pidfile: Path
    pid: int
    proc: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


def bird_files(run_dir: Path, name: str) -> tuple[Path, Path]:
    """Return the control socket and pid file paths of daemon `name` under `run_dir`."""
    return run_dir / f"{name}.ctl", run_dir / f"{name}.pid"


def check_config(conf: Path) -> None:
    """Parse `conf` with `bird -p`; raise RuntimeError with BIRD's file:line message if bad."""
    done = subprocess.run(
        ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bird rejects {conf}: {done.stderr.strip() or done.stdout.strip()}")


def start_bird(ns: str, conf: Path, run_dir: Path, name: str, detach: bool = False) -> BirdDaemon:
    """Start BIRD in the foreground in namespace `ns`; return once its control socket answers.

    BIRD runs as this process's child (`bird -f`), so stopping it also reaps it; its PID is in
    the pid file for `calicc lab down` from another process. With `detach` it outlives this
    process instead (a lab's daemons).

    Raises:
        RuntimeError: BIRD rejected the configuration or exited (the message says why).
    """
    check_config(conf)
    run_dir.mkdir(parents=True, exist_ok=True)
    sock, pidfile = bird_files(run_dir, name)
    pidfile.unlink(missing_ok=True)
    args = ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(pidfile)]
    command = ["ip", "netns", "exec", ns, *args]
    log = run_dir / f"{name}.log"
    proc = None
    if detach:
        pid = spawn_detached(command, log)
    else:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        pid = proc.pid
    poll(lambda: not alive(pid) or _answers(sock), WAIT_S, f"BIRD socket {sock}")
    if not alive(pid):
        raise RuntimeError(f"bird in {ns} exited; see {log}")
    return BirdDaemon(ns=ns, conf=conf, sock=sock, pidfile=pidfile, pid=pid, proc=proc)


def _answers(sock: Path) -> bool:
    done = subprocess.run(
        ["birdc", "-s", str(sock), "show", "status"], capture_output=True, check=False
    )
    return done.returncode == 0


def stop_bird(daemon: BirdDaemon) -> None:
    """Stop the daemon by its PID (only if that PID is still this BIRD), remove its files."""
    stop_pid(daemon.pid, must_contain=str(daemon.sock))
    if daemon.proc is not None:
        daemon.proc.wait()
    daemon.sock.unlink(missing_ok=True)
    daemon.pidfile.unlink(missing_ok=True)


def birdc(sock: Path, *command: str) -> str:
    """Run one birdc command against the control socket `sock` and return its output."""
    return subprocess.run(
        ["birdc", "-s", str(sock), *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def parse_protocols(text: str) -> dict[str, dict[str, str]]:
    r"""Parse `birdc show protocols` into {name: {proto, state, since, info}}.

    Examples:
        >>> out = "BIRD 2.0.12 ready.\nName Proto Table State Since Info\n"
        >>> out += "Mesh_10_0_0_2 BGP --- up 12:00:01.000 Established\n"
        >>> parse_protocols(out)["Mesh_10_0_0_2"]["info"]
        'Established'
    """
    protocols: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] in {"BIRD", "Name"}:  # noqa: PLR2004
            continue
        info = " ".join(fields[5:])
        protocols[fields[0]] = {
            "proto": fields[1],
            "state": fields[3],
            "since": fields[4],
            "info": info,
        }
    return protocols


def bgp_sessions(sock: Path) -> dict[str, str]:
    """Return {protocol name: info} for every BGP protocol of the daemon at `sock`."""
    protocols = parse_protocols(birdc(sock, "show", "protocols"))
    return {name: p["info"] for name, p in protocols.items() if p["proto"] == "BGP"}


def established(sock: Path) -> bool:
    """Return whether the daemon has BGP protocols and all are Established."""
    sessions = bgp_sessions(sock)
    return bool(sessions) and all(info.startswith("Established") for info in sessions.values())


def wait_established(sock: Path, timeout: float = WAIT_S) -> dict[str, str]:
    """Wait until every BGP protocol of the daemon at `sock` is Established; return them."""
    poll(
        lambda: established(sock),
        timeout,
        f"BGP Established on {sock}",
        last=lambda: birdc(sock, "show", "protocols"),
    )
    return bgp_sessions(sock)


def kernel_routes(ns: str, version: int = 4) -> list[dict[str, Any]]:
    """Return the main routing table of family `version` of namespace `ns` as `ip -j route`.

    `ip -n` enters the namespace itself: no `ip netns exec` (and its mount namespace) per read.
    """
    args = ["ip", "-n", ns, "-j", f"-{version}", "route", "show", "table", "main"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    routes: list[dict[str, Any]] = json.loads(out or "[]")
    return routes


def both_tables(ns: str) -> list[dict[str, Any]]:
    """Return the main routing tables of both families of namespace `ns`, IPv4 first."""
    return kernel_routes(ns) + kernel_routes(ns, 6)


def route_key(route: dict[str, Any]) -> tuple[str, str, str, str, bool]:
    """Return (dst, gateway, dev, protocol, onlink) of one `ip -j route` object."""
    flags = route.get("flags", [])
    return (
        str(route.get("dst", "")),
        str(route.get("gateway", "")),
        str(route.get("dev", "")),
        str(route.get("protocol", "")),
        "onlink" in flags,
    )


def wait_routes(
    ns: str, want: set[tuple[str, str, str, str, bool]], timeout: float = WAIT_S
) -> set[tuple[str, str, str, str, bool]]:
    """Wait until namespace `ns` holds every route of `want` (see route_key); return all keys."""

    def probe() -> set[tuple[str, str, str, str, bool]] | None:
        keys = {route_key(r) for r in both_tables(ns)}
        return keys if want <= keys else None

    def state() -> str:
        have = {route_key(r) for r in both_tables(ns)}
        return f"missing {sorted(want - have)}\nhave {sorted(have)}"

    return poll(probe, timeout, f"routes in {ns}", last=state)


_ROUTE = re.compile(r"^(?P<prefix>\S+)?\s+(?P<dest>\S+)\s+\[(?P<proto>\S+)[^\]]*\]")
_PAIRS = re.compile(r"\(([^)]*)\)")


def bird_rib(sock: Path) -> list[RibPath]:
    """Return every route of every table of the BIRD at `sock` (`show route all`) as paths."""
    return parse_routes(birdc(sock, "show", "route", "all"))


def parse_routes(text: str) -> list[RibPath]:
    r"""Parse `birdc show route all` into paths (next hop: BGP.next_hop, else the first via).

    Examples:
        >>> out = "Table master4:\n10.1.0.0/24          unicast [tor 12:00:00.000 from 10.0.0.2]"
        >>> out += " * (100) [AS65001i]\n\tvia 10.0.0.2 on eth0\n\tType: BGP univ\n"
        >>> out += "\tBGP.as_path: 65001 65001\n\tBGP.community: (64512,100) (65000,7)\n"
        >>> out += "\tBGP.large_community: (64512, 1, 2)\n\tBGP.local_pref: 100\n"
        >>> (path,) = parse_routes(out)
        >>> path.prefix, path.next_hop, path.as_path, path.communities, path.large_communities
        ('10.1.0.0/24', '10.0.0.2', (65001, 65001), ('64512:100', '65000:7'), ('64512:1:2',))
    """
    routes: list[dict[str, object]] = []
    prefix = ""
    for line in text.splitlines():
        if line.startswith("\t"):
            if routes:
                _attribute(routes[-1], line.strip())
            continue
        match = _ROUTE.match(line)
        if match is None:
            continue
        prefix = match["prefix"] or prefix
        routes.append({"prefix": prefix, "next_hop": ""})
    return [RibPath(**r) for r in routes]  # type: ignore[arg-type]


def _attribute(route: dict[str, object], line: str) -> None:
    name, _, value = line.partition(": ")
    if line.startswith("via ") and not route["next_hop"]:
        route["next_hop"] = line.split()[1]
    elif name == "BGP.next_hop":
        route["next_hop"] = value.split()[0]
    elif name == "BGP.as_path":
        route["as_path"] = tuple(int(a) for a in re.findall(r"\d+", value))
    elif name == "BGP.community":
        route["communities"] = tuple(
            p.replace(" ", "").replace(",", ":") for p in _PAIRS.findall(value)
        )
    elif name == "BGP.large_community":
        route["large_communities"] = tuple(
            p.replace(" ", "").replace(",", ":") for p in _PAIRS.findall(value)
        )
    elif name == "BGP.local_pref":
        route["local_pref"] = int(value)
    elif name == "BGP.med":
        route["med"] = int(value)
