"""Import a running Calico's exported resources: map, check the result builds, then write.

Everything is computed in memory. Before anything is written the result is loaded and planned
exactly as `calicc build` would (in a private temporary directory): the build must accept the
cluster and the lock and keep every imported block on its node. The lock written is the one
that plan keeps, so a following `calicc build` (even `--frozen`) leaves it as it is; it holds
every block Calico had, plus any block calicc adds for a node's max_pods, which the report names.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.calico_import import bgp, bgp_filters, ippools, nodes, policies
from calicc.compiler.calico_import.adopted import AdoptedPods, adopt_pods
from calicc.compiler.calico_import.blocks import Blocks, Network, collect_blocks
from calicc.compiler.calico_import.peer_options import mesh_restart_notes
from calicc.compiler.calico_import.report import NOTE, UNMAPPED, WARNING, Note, report_markdown
from calicc.compiler.calico_import.resources import POLICY_API, Resource, read_resources
from calicc.compiler.calico_import.validate import entry_problems
from calicc.compiler.emit import write_atomic
from calicc.compiler.errors import CaliccError, Problem, SpecError
from calicc.compiler.lock import Lock, NodeAllocation, net_key
from calicc.compiler.pools import DEFAULT_POOL, DEFAULT_POOL_V6
from calicc.contract.names import V4, V6

CLUSTER, LOCK, REPORT = "cluster.yaml", "cluster.lock.yaml", "import-report.md"
IPAM_KINDS = ("IPAMBlock", "BlockAffinity")
MAPPED_KINDS = (
    "IPPool", "IPReservation", "BGPConfiguration", "BGPPeer", "BGPFilter", "Node", *IPAM_KINDS
)  # fmt: skip
KIND_REASONS = {
    "GlobalNetworkPolicy": "Calico policy is not converted (calicc reads GlobalNetworkPolicy "
    "only for host endpoints, with host_protection): rewrite it by hand",
    "NetworkPolicy": "Calico's projectcalico.org NetworkPolicy is not converted: rewrite it "
    "as a Kubernetes NetworkPolicy",
    "HostEndpoint": "host endpoints are cluster.yaml's host_protection: set it by hand",
    "IPAMConfiguration": "calicc allocates whole blocks at build time",
    "IPAMHandle": "calicc's IPAM keeps its own records of pod addresses",
    "FelixConfiguration": "calicc's agent is configured by cluster.yaml (the default one's "
    "ipipMTU / vxlanMTU become mtu; nothing else is read)",
}
HEADER = (
    "# Imported by `calicc import` from a running Calico's exported resources.\n"
    "# Read import-report.md: what could not be mapped is listed there.\n"
    "# Keep cluster.lock.yaml beside this file: it holds every node's blocks.\n"
)


@dataclass(frozen=True)
class Imported:
    """The import's files (relative path -> text) and its report."""

    files: dict[str, str]
    notes: tuple[Note, ...]
    summary: tuple[str, ...]


def _by_kind(resources: list[Resource], notes: list[Note]) -> dict[str, list[Resource]]:
    kinds: dict[str, list[Resource]] = defaultdict(list)
    for res in resources:
        if res.api_version == POLICY_API:
            kind = "K8sNetworkPolicy" if res.kind == "NetworkPolicy" else "other"
        else:
            kind = res.kind if res.kind in MAPPED_KINDS else "other"
        if kind == "other":
            why = KIND_REASONS.get(res.kind, "calicc has no equivalent of this kind")
            notes.append(Note(UNMAPPED, res.kind, res.name, "", why))
            if res.kind == "FelixConfiguration" and res.name == "default":
                kinds[res.kind].append(res)  # for its MTUs
        else:
            kinds[kind].append(res)
    for found in kinds.values():  # the same bytes whatever the order of files and items
        found.sort(key=lambda r: (str(r.data["metadata"].get("namespace", "")), r.name))
    return kinds


def _first_problem(kinds: dict[str, list[Resource]], kind: str, message: str) -> Problem:
    found = kinds.get(kind) or [r for rs in kinds.values() for r in rs]
    if found:
        return found[0].problem((), message)
    return Problem("", None, None, kind, message)


def _cluster(
    kinds: dict[str, list[Resource]], name: str, problems: list[Problem], notes: list[Note]
) -> tuple[dict[str, Any], list[ippools.ImportedPool], dict[str, nodes.ImportedNode]]:
    """Return cluster.yaml's data (without policies), its pools and its nodes."""
    read = [ippools.read_pool(r, problems, notes) for r in kinds["IPPool"]]
    pools, renamed = ippools.name_pools([p for p in read if p is not None])
    notes += renamed
    if not {DEFAULT_POOL, DEFAULT_POOL_V6} & {p.name for p in pools} and not problems:
        why = "no IPPool serves every node: calicc needs one enabled pool without a nodeSelector"
        problems.append(_first_problem(kinds, "IPPool", why))
    found = (nodes.read_node(r, problems, notes) for r in kinds["Node"])
    by_name = {n.name: n for n in found if n is not None}
    if not kinds["Node"]:
        problems.append(_first_problem(kinds, "Node", "no Node exported: calicc needs the nodes"))
    settings = bgp.read_config(kinds["BGPConfiguration"], notes, problems)
    config = [(r, dict(settings)) for r in kinds["BGPConfiguration"] if r.name == "default"]
    filters = [bgp_filters.read_filter(r, notes) for r in kinds["BGPFilter"]]
    known = {f["name"] for f in filters if f is not None}
    peers = [bgp.read_peer(r, by_name, notes, problems, known) for r in kinds["BGPPeer"]]
    if known:
        settings["filters"] = [f for f in filters if f is not None]
    settings["peers"] = [p for p in peers if p is not None]
    notes += bgp.topology_notes(by_name, settings["node_to_node_mesh"], notes)
    notes += mesh_restart_notes(settings, by_name.values())
    data: dict[str, Any] = {"name": name, **ippools.pool_keys(pools)}
    data |= ippools.pod_mtu(kinds["FelixConfiguration"], pools)
    if "mtu" not in data:
        why = (
            "no MTU of an encapsulation in use is set: pods get link_mtu (1500 unless set) minus "
            "the encapsulation, as Calico derives it from the link; set link_mtu if it differs"
        )
        notes.append(Note(NOTE, "FelixConfiguration", "default", "spec.ipipMTU", why))
    reserved = ippools.read_reservations(kinds["IPReservation"], pools, problems, notes)
    if reserved:
        data["reservations"] = reserved
    data |= bgp.service_ranges(kinds["BGPConfiguration"]) | {"bgp": settings}
    data["nodes"] = [by_name[n].entry for n in sorted(by_name)]
    if not settings["peers"]:
        del settings["peers"]
    checked = [(p.res, p.entry()) for p in pools if p.name not in (DEFAULT_POOL, DEFAULT_POOL_V6)]
    checked += [(r, p) for r, p in zip(kinds["BGPPeer"], peers, strict=True) if p is not None]
    checked += [(r, f) for r, f in zip(kinds["BGPFilter"], filters, strict=True) if f is not None]
    checked += config
    checked += [(node.res, node.entry) for node in by_name.values()]
    problems += [p for res, entry in checked for p in entry_problems(res, entry)]
    return data, pools, by_name


def _tunnel(
    node: nodes.ImportedNode, keys: tuple[str, ...], blocks: tuple[Network, ...]
) -> IPv4Address | IPv6Address | None:
    """Return the first of the node's tunnel addresses that lies in one of its blocks."""
    for key in keys:
        if key in node.tunnels:
            address = ip_address(node.tunnels[key])
            if any(address in block for block in blocks):
                return address
    return None


def _tunnel_order(pools: list[ippools.ImportedPool]) -> tuple[str, ...]:
    """Return which of Calico's IPv4 tunnel addresses calicc's tunnel takes, by preference."""
    vxlan = any(p.vxlan_mode != "Never" and not p.disabled for p in pools if p.cidr.version == V4)
    return ("vxlan", "ipip") if vxlan else ("ipip", "vxlan")


def _lock(
    held: Blocks,
    by_name: dict[str, nodes.ImportedNode],
    pools: list[ippools.ImportedPool],
    adopted: AdoptedPods,
) -> Lock:
    vxlan = {p.cidr.version for p in pools if p.vxlan_mode != "Never" and not p.disabled}
    result = {}
    for name, per_pool in sorted(held.held.items()):
        node = by_name[name]
        blocks = {pool: tuple(sorted(bs, key=net_key)) for pool, bs in per_pool.items()}
        every = tuple(b for bs in blocks.values() for b in bs)
        v4 = _tunnel(node, _tunnel_order(pools), every)
        v6 = _tunnel(node, ("vxlan_v6",), every)
        result[name] = NodeAllocation(
            blocks=blocks,
            tunnel_address=v4 if isinstance(v4, IPv4Address) else None,
            vtep_mac=node.tunnels.get("mac") if V4 in vxlan else None,
            tunnel_address_v6=v6 if isinstance(v6, IPv6Address) else None,
            vtep_mac_v6=node.tunnels.get("mac_v6") if V6 in vxlan else None,
            adopted=tuple(adopted.by_node.get(name, ())),
        )
    return Lock(nodes=result)


def _moved_tunnels(
    by_name: dict[str, nodes.ImportedNode], order: tuple[str, ...], planned: Lock
) -> list[Note]:
    """Note each node whose tunnel address calicc did not keep (not in its first tunnel pool)."""
    notes = []
    for name, alloc in sorted(planned.nodes.items()):
        calico = next((by_name[name].tunnels[k] for k in order if k in by_name[name].tunnels), None)
        mine = alloc.tunnel_address
        if calico is not None and mine is not None and str(mine) != calico:
            why = f"the node's tunnel address moves from {calico} to {mine} (no pod's address does)"
            notes.append(Note(WARNING, "Node", name, "spec.bgp.ipv4IPIPTunnelAddr", why))
    return notes


def import_calico(paths: Sequence[Path], name: str = "calico") -> Imported:
    """Map the exported resources of `paths` onto calicc's files; raise on any fatal problem."""
    problems: list[Problem] = []
    notes: list[Note] = []
    kinds = _by_kind(read_resources(paths), notes)
    data, pools, by_name = _cluster(kinds, name, problems, notes)
    labels = {n: node.labels for n, node in by_name.items()}
    held = collect_blocks([r for k in IPAM_KINDS for r in kinds[k]], pools, labels)
    problems += held.problems
    notes += held.notes
    pods = adopt_pods(kinds["IPAMBlock"], held, by_name, data.get("reservations", ()), pools)
    problems += pods.problems
    notes += pods.notes
    if problems:
        raise SpecError(problems)
    policy_text, policy_count, policy_notes = policies.policy_file(kinds["K8sNetworkPolicy"])
    notes += policy_notes
    files = {LOCK: _lock(held, by_name, pools, pods).to_yaml()}
    if policy_text is not None:
        data["policies"] = [policies.POLICY_FILE]
        files[policies.POLICY_FILE] = policy_text
    files[CLUSTER] = HEADER + yaml.safe_dump(data, sort_keys=False)
    planned = planned_lock(files)
    files[LOCK] = planned.to_yaml()
    notes += _added(held, planned) + _moved_tunnels(by_name, _tunnel_order(pools), planned)
    count = sum(len(bs) for per in held.held.values() for bs in per.values())
    summary = (
        f"{len(pools)} pools, {len(by_name)} nodes, {len(data['bgp'].get('peers', ()))} "
        f"external BGP peers, {policy_count} NetworkPolicies",
        f"{count} blocks kept on {len(held.held)} nodes (cluster.lock.yaml)",
        f"{sum(map(len, pods.by_node.values()))} running pods' addresses adopted (its `adopted:`)",
        f"{sum(n.severity == UNMAPPED for n in notes)} not mapped, "
        f"{sum(n.severity == WARNING for n in notes)} warnings",
    )
    return Imported(
        files=files, notes=tuple(sorted(set(notes), key=lambda n: n.order)), summary=summary
    )


def planned_lock(files: dict[str, str]) -> Lock:
    """Plan the imported cluster as `calicc build` would; return the lock its plan keeps.

    A build that refuses the result, or would drop an imported block, is an error: the import
    must not hand over a cluster that moves a running pod's address.
    """
    from calicc.compiler.build import load_cluster, plan_locked  # noqa: PLC0415  (heavy)

    with tempfile.TemporaryDirectory(prefix="calicc-import-") as tmp:
        for rel, text in files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        try:
            plan, _ = plan_locked(load_cluster(Path(tmp) / CLUSTER))
        except CaliccError as exc:
            text = str(exc).replace(f"{tmp}/", "")
            raise CaliccError(f"the imported cluster does not build:\n{text}") from exc
    return plan.lock


def _added(held: Blocks, planned: Lock) -> list[Note]:
    notes = []
    for name, alloc in sorted(planned.nodes.items()):
        had = {b for per in held.held.get(name, {}).values() for b in per}
        lost = had - set(alloc.all_blocks())
        if lost:  # plan_locked refuses a moved block first; this is the promise, stated again
            raise CaliccError(f"node {name} would lose {', '.join(map(str, sorted(lost)))}")
        new = [str(b) for b in alloc.all_blocks() if b not in had]
        if new:
            why = f"calicc adds {', '.join(new)}: the node's blocks hold max_pods (default 110)"
            notes.append(Note(NOTE, "Node", name, "blocks", why))
    return notes


def write_imported(imported: Imported, out: Path, *, force: bool = False) -> list[Path]:
    """Write the files and import-report.md into `out`; refuse to overwrite unless `force`.

    A directory that is a symbolic link (`out`, or `out/policies`) is refused, force or not:
    the files would land wherever it points.
    """
    texts = {**imported.files, REPORT: report_markdown(imported.notes, imported.summary)}
    paths = [out / rel for rel in sorted(texts)]
    linked = {out, *(p.parent for p in paths)}
    problems = [
        Problem(str(d), None, None, "", "is a symbolic link: import into a real directory")
        for d in sorted(linked)
        if d.is_symlink()
    ]
    if not force:
        problems += [
            Problem(str(p), None, None, "", "exists; import into a new directory, or --force")
            for p in paths
            if p.exists() or p.is_symlink()
        ]
    if problems:
        raise SpecError(problems)
    for rel in sorted(texts):
        write_atomic(out / rel, texts[rel])
    return paths
