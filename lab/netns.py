"""Small, safe helpers for network namespaces that calicc itself creates.

Everything here acts only inside named namespaces; nothing changes the root namespace's
links, routes, iptables or ipsets.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

NETNS_DIR = "/var/run/netns"  # where `ip netns add` mounts a namespace under its name


def ns_run(
    ns: str, args: Sequence[str], check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command inside namespace `ns`, capturing text output."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *args],
        capture_output=True,
        text=True,
        check=check,
        input=input_text,
    )


def ns_list() -> list[str]:
    """Return the names of every named network namespace."""
    out = subprocess.run(
        ["ip", "netns", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ns_add(ns: str) -> None:
    """Create namespace `ns` with loopback up."""
    subprocess.run(["ip", "netns", "add", ns], check=True)
    ns_run(ns, ["ip", "link", "set", "lo", "up"])


def ns_delete(ns: str) -> None:
    """Delete namespace `ns` if it exists (its links go with it)."""
    if ns in ns_list():
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def veth_between(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """Create a veth pair with one end in each namespace (created in ns_a, moved to ns_b)."""
    ns_run(ns_a, ["ip", "link", "add", if_a, "type", "veth", "peer", "name", if_b])
    ns_run(ns_a, ["ip", "link", "set", if_b, "netns", ns_b])
    ns_run(ns_a, ["ip", "link", "set", if_a, "up"])
    ns_run(ns_b, ["ip", "link", "set", if_b, "up"])


def ns_ping(ns: str, address: str, count: int = 3, wait: int = 2) -> bool:
    """Return whether `address` answers at least one of `count` pings from namespace `ns`.

    Several tries, so a first ARP or a loaded machine does not read as "unreachable".
    """
    args = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(wait), address]
    return ns_run(ns, args, check=False).returncode == 0
