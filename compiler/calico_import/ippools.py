"""IPPools onto cluster.yaml's pools, and IPReservations onto its reservations.

calicc's default pools (network_cidr, network_cidr_v6) serve every node and cannot be disabled,
so the default is the Calico pool named default-ipv4-ippool when it can be one, else the first
IPv4 pool by name that serves every node (then IPv6 the same way); every other pool is listed
under `pools:` with all its settings written out (nothing inherited by accident). A pool that
becomes a default pool takes calicc's default name in the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from calicc.compiler.calico_import.fields import Reader, leftover, selector_or_none
from calicc.compiler.calico_import.report import NOTE, UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.pools import DEFAULT_POOL, DEFAULT_POOL_V6
from calicc.contract.names import V4, V6
from calicc.contract.text import cut

MODES = ("Always", "CrossSubnet", "Never")
DEFAULT_BLOCK = {V4: 26, V6: 122}
DEFAULT_USES = frozenset({"Workload", "Tunnel"})
USES = ("Workload", "Tunnel", "LoadBalancer")
MTU_KEYS = {  # FelixConfiguration's MTU of each encapsulation, per family
    V4: (("ipipMTU", "ipip_mode"), ("vxlanMTU", "vxlan_mode")),
    V6: (("vxlanMTUV6", "vxlan_mode"),),
}
MAPPED = frozenset(
    {"cidr", "blockSize", "ipipMode", "vxlanMode", "natOutgoing", "disabled", "nodeSelector",
     "allowedUses", "ipip", "nat-outgoing"}
)  # fmt: skip
REASONS = {
    "namespaceSelector": "calicc's pools serve every namespace",
    "disableBGPExport": "calicc advertises every block of a node's pools",
    "assignmentMode": "calicc allocates blocks from every pool that serves a node",
}


@dataclass(frozen=True)
class ImportedPool:
    """One IPPool as calicc will know it."""

    calico_name: str
    cidr: IPv4Network | IPv6Network
    block_size: int
    ipip_mode: str
    vxlan_mode: str
    nat_outgoing: bool
    node_selector: str | None
    disabled: bool
    res: Resource
    name: str = ""  # calicc's name: the Calico name, or the default pool's
    uses: tuple[str, ...] | None = None  # allowedUses, None for Calico's default

    @property
    def serves_all(self) -> bool:
        """Return whether the pool can be a calicc default pool (every node, enabled)."""
        return self.node_selector is None and not self.disabled and self.uses is None

    def entry(self) -> dict[str, Any]:
        """Return the pool's `pools:` entry of cluster.yaml."""
        data: dict[str, Any] = {"name": self.name, "cidr": str(self.cidr)}
        data["block_size"] = self.block_size
        if self.cidr.version == V4:
            data["ipip_mode"] = self.ipip_mode
        data |= {"vxlan_mode": self.vxlan_mode, "nat_outgoing": self.nat_outgoing}
        if self.node_selector is not None:
            data["node_selector"] = self.node_selector
        if self.disabled:
            data["disabled"] = True
        if self.uses is not None:
            data["allowed_uses"] = list(self.uses)
        return data


def _uses(read: Reader) -> tuple[str, ...] | None:
    """Return the pool's allowedUses in Calico's order, None for the default (or a problem)."""
    uses = read.value("allowedUses")
    if uses is None or uses == []:
        return None
    if not isinstance(uses, list) or not set(map(str, uses)) <= set(USES):
        read.fail("allowedUses", f"expected a list of {', '.join(USES)}, got {cut(uses)}")
        return None
    found = tuple(use for use in USES if use in uses)
    return None if set(found) == DEFAULT_USES else found


def read_pool(res: Resource, problems: list[Problem], notes: list[Note]) -> ImportedPool | None:
    """Return the pool, or None when it cannot be read (a problem is recorded)."""
    read = Reader(res, problems)
    cidr = read.network("cidr", required=True)
    if cidr is None:
        return None
    block = read.value("blockSize") or DEFAULT_BLOCK[cidr.version]
    if not isinstance(block, int) or isinstance(block, bool):
        read.fail("blockSize", f"expected a number such as 26, got {block!r}")
        return None
    selector, why = selector_or_none(res.spec.get("nodeSelector"))
    if why:
        notes.append(
            Note(UNMAPPED, res.kind, res.name, "spec.nodeSelector", f"{why}: serves every node")
        )
    notes.extend(leftover(res, MAPPED, REASONS))
    pool = ImportedPool(
        calico_name=res.name,
        cidr=cidr,
        block_size=block,
        ipip_mode=read.choice("ipipMode", MODES, "Never"),
        vxlan_mode=read.choice("vxlanMode", MODES, "Never"),
        nat_outgoing=read.boolean("natOutgoing"),
        node_selector=selector,
        disabled=read.boolean("disabled"),
        res=res,
        name=res.name,
        uses=_uses(read),
    )
    return pool


def _default(pools: list[ImportedPool], version: int, name: str) -> ImportedPool | None:
    fit = sorted(
        (p for p in pools if p.cidr.version == version and p.serves_all),
        key=lambda p: (p.calico_name != name, p.calico_name),
    )
    return fit[0] if fit else None


def name_pools(pools: list[ImportedPool]) -> tuple[list[ImportedPool], list[Note]]:
    """Return the pools, the default ones first and renamed to calicc's default names."""
    v4 = _default(pools, V4, DEFAULT_POOL)
    v6 = _default(pools, V6, DEFAULT_POOL_V6)
    if v4 is not None and v6 is not None and _shared(v6) != _shared(v4):
        v6 = None  # the default pools share vxlan_mode and nat_outgoing: list it instead
    notes = []
    named = []
    for default, name in ((v4, DEFAULT_POOL), (v6, DEFAULT_POOL_V6)):
        if default is None:
            continue
        named.append(_renamed(default, name))
        if default.calico_name != name:
            why = f"calicc's default pool: its blocks are listed under {name} in the lock"
            notes.append(Note(NOTE, "IPPool", default.calico_name, "", why))
    named += [p for p in sorted(pools, key=lambda p: p.calico_name) if p not in (v4, v6)]
    return named, notes


def _shared(pool: ImportedPool) -> tuple[str, bool]:
    return pool.vxlan_mode, pool.nat_outgoing


def _renamed(pool: ImportedPool, name: str) -> ImportedPool:
    return ImportedPool(**{**pool.__dict__, "name": name})


def pool_keys(pools: list[ImportedPool]) -> dict[str, Any]:
    """Return cluster.yaml's pool keys: the default pools' top-level keys and `pools:`."""
    data: dict[str, Any] = {}
    listed = []
    for pool in pools:
        if pool.name == DEFAULT_POOL:
            data |= {"network_cidr": str(pool.cidr), "block_size": pool.block_size}
            data |= {"ipip_mode": pool.ipip_mode, "vxlan_mode": pool.vxlan_mode}
            data["nat_outgoing"] = pool.nat_outgoing
        elif pool.name == DEFAULT_POOL_V6:
            data |= {"network_cidr_v6": str(pool.cidr), "block_size_v6": pool.block_size}
            data |= {"vxlan_mode": pool.vxlan_mode, "nat_outgoing": pool.nat_outgoing}
        else:
            listed.append(pool.entry())
    if listed:
        data["pools"] = listed
    return data


def _reservation(
    res: Resource, cidr: IPv4Network | IPv6Network, pools: list[ImportedPool]
) -> dict[str, str] | Note:
    """Return the reservation's entry, or the note that says why it is not kept."""
    same = [p for p in pools if p.cidr.version == cidr.version]
    if any(cidr.subnet_of(p.cidr) for p in same):  # type: ignore[arg-type]
        return {"cidr": str(cidr), "name": res.name}
    touching = [p for p in same if p.cidr.overlaps(cidr)]
    if touching:
        why = f"{cidr} reaches outside IPPool {touching[0].calico_name}: not kept"
        return Note(UNMAPPED, res.kind, res.name, "spec.reservedCIDRs", why)
    why = f"{cidr} is outside every imported IPPool: nothing to reserve"
    return Note(NOTE, res.kind, res.name, "spec.reservedCIDRs", why)


def read_reservations(
    resources: list[Resource], pools: list[ImportedPool], problems: list[Problem], notes: list[Note]
) -> list[dict[str, str]]:
    """Return cluster.yaml's `reservations`: each reservedCIDR inside an imported pool.

    Calico accepts a reservation anywhere; calicc only inside a pool, where it means something:
    one outside every pool reserves nothing and is noted, one across a pool's edge is reported.
    """
    found = []
    for res in resources:
        cidrs = res.spec.get("reservedCIDRs")
        if not isinstance(cidrs, list):
            Reader(res, problems).fail("reservedCIDRs", "expected a list of CIDRs or addresses")
            continue
        for index, text in enumerate(cidrs):
            try:
                cidr = ip_network(str(text))
            except ValueError:
                problem = f"expected a CIDR or an address, got {cut(text)!r}"
                problems.append(res.problem(("spec", "reservedCIDRs", index), problem))
                continue
            kept = _reservation(res, cidr, pools)
            if isinstance(kept, Note):
                notes.append(kept)
            else:
                found.append(kept)
    return found


def pod_mtu(felix: list[Resource], pools: list[ImportedPool]) -> dict[str, int]:
    """Return `mtu` from the default FelixConfiguration's MTU of each encapsulation in use.

    Calico gives pods the smallest MTU among the enabled encapsulations; without one set, both
    derive it from the link (calicc: link_mtu, 1500 unless set, minus the overhead).
    """
    used = {
        key
        for p in pools
        if not p.disabled
        for key, mode in MTU_KEYS[p.cidr.version]
        if getattr(p, mode) != "Never"
    }
    found = [
        value
        for res in felix
        for key in sorted(used)
        if isinstance(value := res.spec.get(key), int) and not isinstance(value, bool) and value
    ]
    return {"mtu": min(found)} if found else {}
