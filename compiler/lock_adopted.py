"""The lock's `adopted:` entries: running pods' addresses a node's CNI IPAM must not hand out.

`calicc import` writes them (compiler/calico_import/adopted.py) for the addresses Calico's IPAM
had given to pods in the blocks the lock keeps; `calicc build` carries them into node.json
(`adopted`), and the node's IPAM seeds its store with each entry once (agent/cni/ipam.py).
Here: their shape, read from the lock like every other value (typed, spelled as calicc writes
it); what they must satisfy against the cluster is checked in lock_adopted_check.py. They stay
in the lock while their block does (docs/import.md says how they go).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from calicc.compiler.lock import Adopted
from calicc.contract.adopted import (
    container_problem,
    ifname_problem,
    namespace_problem,
    pod_name_problem,
)

Loc = tuple[str | int, ...]
Fail = Callable[[Loc, str], None]
ENTRY_KEYS = ("address", "container_id", "ifname", "pod")
EXAMPLE = "- {address: 10.244.0.5, container_id: 3f1e0a9b2c, ifname: eth0, pod: shop/web-1}"


def pod_problem(pod: str) -> str | None:
    """Return why `pod` is not `namespace/name` (Kubernetes' name rules), None when it is."""
    namespace, _, name = pod.partition("/")
    return namespace_problem(namespace) or pod_name_problem(name)


def shape_adopted(loc: Loc, value: Any, fail: Fail) -> tuple[Adopted, ...]:
    """Return the entries of a node's `adopted:` list, reporting each wrong one through `fail`."""
    if not isinstance(value, list):
        fail(loc, f"expected a list of running pods' addresses such as `{EXAMPLE}`")
        return ()
    found = (_entry((*loc, i), item, fail) for i, item in enumerate(value))
    return tuple(e for e in found if e is not None)  # in the file's order: problems name indexes


def _text(loc: Loc, entry: dict[str, Any], key: str, fail: Fail) -> str | None:
    value = entry.get(key)
    if not isinstance(value, str):
        fail((*loc, key), f"expected a string, got {type(value).__name__}: `{EXAMPLE}`")
        return None
    return value


def _entry(loc: Loc, item: Any, fail: Fail) -> Adopted | None:
    if not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
        fail(loc, f"expected a mapping such as `{EXAMPLE}`")
        return None
    unknown = sorted(set(item) - set(ENTRY_KEYS))
    for key in unknown:
        fail((*loc, key), f"unknown key; valid keys here: {', '.join(ENTRY_KEYS)}")
    texts = {key: _text(loc, item, key, fail) for key in ("address", "container_id")}
    for key in ("ifname", "pod"):
        texts[key] = _text(loc, item, key, fail) if key in item else None
    address = _address((*loc, "address"), texts["address"], fail)
    problems = [
        (key, why)
        for key, why in (
            ("container_id", container_problem(texts["container_id"] or "-")),
            ("ifname", ifname_problem(texts["ifname"]) if texts["ifname"] is not None else None),
            ("pod", pod_problem(texts["pod"]) if texts["pod"] is not None else None),
        )
        if why is not None and texts[key] is not None
    ]
    for key, why in problems:
        fail((*loc, key), why)
    if address is None or texts["container_id"] is None or problems or unknown:
        return None
    return Adopted(address, texts["container_id"], texts["ifname"] or "eth0", texts["pod"])


def _address(loc: Loc, text: str | None, fail: Fail) -> IPv4Address | IPv6Address | None:
    if text is None:
        return None
    try:
        address = ip_address(text)
    except ValueError:
        fail(loc, f"{text!r} is not an address such as 10.244.0.5 or fd00:244::5")
        return None
    if str(address) != text:
        fail(loc, f"write {text!r} as {address}")
        return None
    return address
