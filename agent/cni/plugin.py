"""The calicc CNI plugin: ADD/DEL/CHECK/GC/STATUS for a pod's veth, address and policy."""

from __future__ import annotations

from typing import Any

from agent.cni import endpoint_policy
from agent.cni.check import check_wiring
from agent.cni.errors import CHECK_FAILED, INVALID_CONFIG, CniError
from agent.cni.ipam_plugin import (
    gc_attachments,
    ipam_add,
    ipam_check,
    ipam_del,
    ipam_request,
    ipam_status,
    store_for,
)
from agent.cni.naming import host_veth_name, pod_identity
from agent.cni.node import load_manifest
from agent.cni.request import Request
from agent.cni.result import dump, plugin_result, prev_address, require_version
from agent.cni.veth import Wiring, add_veth, del_veth

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


def pod_mtu(req: Request) -> int:
    """Return the netconf's MTU, else the manifest's pod MTU."""
    mtu = req.conf.get("mtu")
    if mtu in (None, 0):
        return load_manifest(req.bundle).pod_mtu
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:  # noqa: PLR2004
        raise CniError(INVALID_CONFIG, f"netconf mtu {mtu!r} must be an integer 68-65535")
    return mtu


def host_name(req: Request) -> str:
    """Return the host veth name of the request's pod."""
    return host_veth_name(pod_identity(req.args, req.container_id))


def cmd_add(req: Request) -> str:
    """Allocate, wire and apply policy; on any failure undo the wiring and release the address."""
    _ipam_section(req)
    mtu = pod_mtu(req)
    ipreq = ipam_request(req)
    alloc = ipam_add(ipreq)
    wiring = Wiring(host_name(req), req.ifname, req.netns, alloc.address, mtu)
    try:
        host, pod = add_veth(wiring)
        endpoint_policy.attach(req, load_manifest(req.bundle), wiring.host, alloc.address)
    except BaseException:
        del_veth(req.netns, req.ifname)
        ipam_del(ipreq)
        raise
    return dump(plugin_result(req.cni_version, alloc.address, host, pod))


def cmd_del(req: Request) -> str:
    """Release the address, remove policy and the interface; every step runs, errors last."""
    ipreq = ipam_request(req)
    failure: CniError | None = None
    released = []
    try:
        released = ipam_del(ipreq)
    except CniError as exc:
        failure = exc
    try:
        manifest = load_manifest(req.bundle)
        endpoint_policy.detach(req.state_dir, manifest, host_name(req), released)
    except CniError as exc:
        failure = failure or exc
    del_veth(req.netns, req.ifname)
    if failure is not None:
        raise failure
    return ""


def cmd_check(req: Request) -> str:
    """Fail with every difference between the pod and what ADD programmed."""
    address = prev_address(req.conf)
    if address is None:
        raise CniError(CHECK_FAILED, "CHECK needs prevResult with the pod's address")
    check_wiring(Wiring(host_name(req), req.ifname, req.netns, address, pod_mtu(req)))
    ipam_check(ipam_request(req))
    return ""


def cmd_gc(req: Request) -> str:
    """Release IPAM allocations and policy state of attachments the runtime no longer has."""
    ipreq = ipam_request(req)
    keep = gc_attachments(req)
    store_for(ipreq).gc(keep)
    endpoint_policy.collect(req.state_dir, load_manifest(req.bundle), keep)
    return ""


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
