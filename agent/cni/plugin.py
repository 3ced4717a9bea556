"""The calicc CNI plugin: ADD/DEL/CHECK/GC/STATUS for a pod's veth, address and policy."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from calicc.agent.cni import endpoint_policy
from calicc.agent.cni.errors import INVALID_CONFIG, CniError
from calicc.agent.cni.ipam import Address, Allocation, address_order
from calicc.agent.cni.ipam_plugin import (
    gc_attachments,
    ipam_check,
    ipam_claim,
    ipam_del,
    ipam_request,
    ipam_status,
    store_for,
)
from calicc.agent.cni.naming import host_veth_name, pod_ref
from calicc.agent.cni.netconf import check_prev_result
from calicc.agent.cni.netns import require_netns
from calicc.agent.cni.node import load_manifest
from calicc.agent.cni.request import Request
from calicc.agent.cni.result import dump, plugin_result, require_version
from calicc.agent.cni.veth import Wiring, add_veth, del_veth, remove_host_ends, remove_pair
from calicc.contract.node import NodeFacts

IPAM_TYPE = "calicc-ipam"
MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def _ipam_section(req: Request) -> dict[str, Any]:
    section = req.conf.get("ipam")
    if not isinstance(section, dict) or section.get("type") != IPAM_TYPE:
        raise CniError(
            INVALID_CONFIG,
            f'the calicc plugin needs "ipam": {{"type": "{IPAM_TYPE}"}} in its netconf '
            "(addresses come from the node's compiled blocks)",
        )
    return section


def pod_mtu(req: Request, manifest: NodeFacts) -> int:
    """Return the netconf's MTU (checked by agent/cni/netconf.py), else the node's pod MTU."""
    return int(req.conf.get("mtu") or manifest.pod_mtu)


def host_name(req: Request) -> str:
    """Return the host veth name of the request's pod."""
    return host_veth_name(pod_ref(req.args, req.container_id).identity)


def host_of(alloc: Allocation) -> str:
    """Return the host veth name of an IPAM allocation's pod (ADD records its identity)."""
    return host_veth_name(alloc.attrs.get("identity") or alloc.container_id)


def undo(failure: BaseException, *steps: Callable[[], object]) -> None:
    """Run every undo step of a failed ADD; what fails is noted in the error's details."""
    notes = []
    for step in steps:
        try:
            step()
        except (CniError, OSError) as exc:
            notes.append(f"rollback: {exc}")
    if notes and isinstance(failure, CniError):
        failure.details = "; ".join(filter(None, [failure.details, *notes]))


def cmd_add(req: Request) -> str:
    """Allocate, wire and apply policy; a failure takes back exactly what this ADD took.

    Nothing is touched until the netconf, the manifest and the pod's namespace check out.
    """
    _ipam_section(req)
    manifest = load_manifest(req.bundle)
    require_netns(req.netns)
    ipreq = ipam_request(req)
    claim = ipam_claim(ipreq)
    addresses = tuple(a.address for a in claim.allocations)  # one per family, IPv4 first
    wiring = Wiring(host_name(req), req.ifname, req.netns, addresses, pod_mtu(req, manifest))
    release = partial(store_for(ipreq).unclaim, claim)
    try:
        host, pod = add_veth(wiring)  # removes its own half-made pair
    except BaseException as exc:
        undo(exc, release)
        raise
    try:
        endpoint_policy.attach(req, manifest, wiring.host, addresses)
    except BaseException as exc:
        forget = partial(endpoint_policy.undo_attach, req.state_dir, manifest, wiring.host)
        undo(exc, forget, partial(remove_pair, wiring.host), release)
        raise
    return dump(plugin_result(req.cni_version, addresses, host, pod))


def cmd_del(req: Request) -> str:
    """Release the addresses, remove policy and the interface; every step runs, errors last.

    The host veth is the one ADD named from the pod's recorded identity. A DEL without a
    network namespace (containerd's ctr passes none) removes the host end by that name, unless
    another live allocation names the same veth.
    """
    ipreq = ipam_request(req)
    failure: CniError | None = None
    released: list[Allocation] = []
    try:
        released = ipam_del(ipreq)
    except CniError as exc:
        failure = exc
    host = host_of(released[0]) if released else host_name(req)
    addresses = [a.address for a in released]
    try:
        manifest = load_manifest(req.bundle)
        endpoint_policy.detach(req.state_dir, manifest, host, addresses)
    except CniError as exc:
        failure = failure or exc
    del_veth(req.netns, req.ifname)
    if not req.netns and released:
        try:
            live = {host_of(a) for a in store_for(ipreq).allocations()}
            remove_host_ends([(host, a) for a in addresses], live)
        except CniError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return ""


def cmd_check(req: Request) -> str:
    """Fail with every difference between the pod and what ADD programmed."""
    # CHECK dumps and compares links, addresses and routes through pyroute2; ADD and DEL use
    # agent/cni/rtnl.py. Imported here so that a standalone ADD does not load pyroute2.
    from calicc.agent.cni.check import check_wiring  # noqa: PLC0415

    addresses = check_prev_result(req.conf)
    manifest = load_manifest(req.bundle)
    check_wiring(Wiring(host_name(req), req.ifname, req.netns, addresses, pod_mtu(req, manifest)))
    ipam_check(ipam_request(req))
    return ""


def cmd_gc(req: Request) -> str:
    """Reclaim attachments the runtime no longer has: IPAM, policy, host routes and veths.

    Only attachments of this network go; a host veth that a live attachment also names stays.
    """
    ipreq = ipam_request(req)
    keep = gc_attachments(req)
    manifest = load_manifest(req.bundle)
    store = store_for(ipreq)
    reclaimed = [(host_of(a), a.address) for a in store.reclaim(keep, req.network)]
    gone = endpoint_policy.collect(req.state_dir, manifest, keep)
    reclaimed += [(r.iface, a) for r in gone for a in r.addresses()]
    live = {host_of(a) for a in store.allocations()}
    live |= {r.iface for r in endpoint_policy.load_records(req.state_dir)}
    remove_host_ends(sorted(set(reclaimed), key=_end_order), live)
    return ""


def _end_order(end: tuple[str, Address]) -> tuple[str, tuple[int, int]]:
    return end[0], address_order(end[1])


def handle_plugin(req: Request) -> str:
    """Run one calicc plugin command and return what to print on stdout."""
    require_version(req.cni_version, req.command, MIN_VERSION.get(req.command, "0.3.0"))
    if req.command == "ADD":
        return cmd_add(req)
    if req.command == "DEL":
        return cmd_del(req)
    if req.command == "CHECK":
        return cmd_check(req)
    if req.command == "GC":
        return cmd_gc(req)
    ipam_status(ipam_request(req))
    return ""
