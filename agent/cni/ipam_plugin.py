"""The calicc-ipam plugin: ADD/DEL/CHECK/GC/STATUS against the node's IpamStore.

The main plugin calls `ipam_add`/`ipam_del` in-process when its `ipam.type` is calicc-ipam;
the `calicc-ipam` executable runs `handle_ipam` for runtimes that delegate to it directly.
"""

from __future__ import annotations

from dataclasses import replace

from calicc.agent.cni.errors import CHECK_FAILED, PLUGIN_NOT_AVAILABLE, CniError
from calicc.agent.cni.ipam import Allocation, Claim, IpamStore
from calicc.agent.cni.naming import pod_ref
from calicc.agent.cni.netconf import GC_KEYS
from calicc.agent.cni.node import ipam_store, load_manifest
from calicc.agent.cni.request import Request
from calicc.agent.cni.result import dump, ipam_result, require_version

IPAM_KEYS = ("root", "state_dir", "bundle", "nodename")


def ipam_request(req: Request) -> Request:
    """Return `req` with the `ipam` section's location keys overriding the top-level ones."""
    section = req.conf.get("ipam")
    if not isinstance(section, dict):
        return req
    merged = dict(req.conf)
    merged.update({k: section[k] for k in IPAM_KEYS if k in section})
    return replace(req, conf=merged)


def store_for(req: Request) -> IpamStore:
    """Return the node's IPAM store for this request."""
    nodename = req.conf.get("nodename") or ""
    return ipam_store(req.state_dir, load_manifest(req.bundle), str(nodename))


def ipam_claim(req: Request) -> Claim:
    """Allocate (or return the existing) addresses of the request's handle, one per family."""
    pod = pod_ref(req.args, req.container_id)
    attrs = {"identity": pod.identity, "namespace": pod.namespace, "pod": pod.name}
    return store_for(req).claim(req.handle, req.container_id, req.ifname, attrs)


def ipam_add(req: Request) -> Allocation:
    """Allocate (or return the existing) addresses of the request's handle; return the first."""
    return ipam_claim(req).allocation


def ipam_del(req: Request) -> list[Allocation]:
    """Release the request's handle (idempotent); return what it held."""
    return store_for(req).release_held(req.handle)


def gc_attachments(req: Request) -> set[tuple[str, str]]:
    """Return the (container id, ifname) pairs the runtime says are still valid (GC, spec 1.1).

    The list's shape was checked with the netconf (agent/cni/netconf.py check_gc).
    """
    key = next((k for k in GC_KEYS if k in req.conf), GC_KEYS[0])
    items = req.conf.get(key) or []
    return {(str(i["containerID"]), str(i.get("ifname", ""))) for i in items}


def ipam_check(req: Request) -> None:
    """Fail unless the handle still holds an address."""
    if not any(a.handle == req.handle for a in store_for(req).allocations()):
        raise CniError(CHECK_FAILED, f"IPAM holds no address for {req.handle}: delete and re-add")


def ipam_status(req: Request) -> None:
    """Fail with PLUGIN_NOT_AVAILABLE when the node's manifest or blocks are missing."""
    try:
        store = store_for(req)
    except CniError as exc:
        raise CniError(PLUGIN_NOT_AVAILABLE, exc.msg) from exc
    if not store.has_candidates():
        raise CniError(PLUGIN_NOT_AVAILABLE, f"node {store.node} has no blocks to allocate from")


def handle_ipam(req: Request) -> str:
    """Run one calicc-ipam command and return what to print on stdout."""
    req = ipam_request(req)
    minimum = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}.get(req.command, "0.3.0")
    require_version(req.cni_version, req.command, minimum)
    if req.command == "ADD":
        held = ipam_claim(req).allocations
        return dump(ipam_result(req.cni_version, [a.address for a in held]))
    if req.command == "DEL":
        ipam_del(req)
    elif req.command == "CHECK":
        ipam_check(req)
    elif req.command == "GC":
        store_for(req).gc(gc_attachments(req), req.network)
    elif req.command == "STATUS":
        ipam_status(req)
    return ""
