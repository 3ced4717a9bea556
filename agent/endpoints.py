"""Live workload endpoints: what the CNI plugin recorded, merged into the node's desired state.

The CNI plugin writes one record per wired pod under `<state_dir>/endpoints/` before it
programs anything (agent/cni/endpoint_policy.py). The agent treats those records as the truth
about which pods exist:

- its desired iptables state is `with_endpoints(iptables.rules, live endpoint rules)`, so a
  re-apply keeps every pod's dispatch rules and `cali-fw-`/`cali-tw-` chains, and the chains of
  pods without a record are stale (removed with the node's other stale chains);
- the members of the runtime (selector) ipsets are the live pods' addresses, with the pod
  selectors evaluated against the current node.json, so a new policy's selector set also gets
  the pods that were already running; each address goes to the sets of its family (IPv6 ones
  to the cali60s: twins);
- its desired ip6tables state is `with_endpoints(ip6tables.rules, rules_v6)`: the chains of
  the pods with an IPv6 address (contract/endpoint.py, family 6).

The agent reads the kernel's state first and the records second: a pod added in between has its
record written before its chains, so its chains are never mistaken for stale ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from calicc.agent.cni.endpoint_policy import (
    ENDPOINTS,
    EndpointRecord,
    load_records,
    rules_for_all,
)
from calicc.agent.files import under
from calicc.contract.endpoint import EndpointRules, selector_sets_for_pod, set_members
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import STATE_DIR

NAMED_PORT_TYPE = "hash:ip,port"
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Endpoints:
    """The live endpoints' chains (iptables, ip6tables) and their runtime ipsets' members."""

    rules: tuple[EndpointRules, ...] = ()
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    records: tuple[EndpointRecord, ...] = ()
    rules_v6: tuple[EndpointRules, ...] = ()


def state_dir(root: Path, conflist_text: str | None) -> Path:
    """Return the CNI plugin's state directory under `root`, as the bundle's conflist sets it.

    Examples:
        >>> state_dir(Path("/r"), '{"plugins": [{"type": "calicc", "state_dir": "/s"}]}')
        PosixPath('/r/s')
        >>> state_dir(Path("/r"), None)
        PosixPath('/r/var/lib/calicc')
    """
    configured = STATE_DIR
    if conflist_text:
        plugins = json.loads(conflist_text).get("plugins", [])
        calicc = [p for p in plugins if isinstance(p, dict) and p.get("type") == "calicc"]
        if calicc and calicc[0].get("state_dir"):
            configured = str(calicc[0]["state_dir"])
    return under(root, configured)


def fingerprint(directory: Path) -> Fingerprint:
    """Return (name, mtime, size) of every endpoint record: changes whenever a pod comes or goes."""
    try:
        entries = list(os.scandir(directory / ENDPOINTS))
    except FileNotFoundError:
        return ()
    found = []
    for entry in entries:
        try:
            st = entry.stat()
        except FileNotFoundError:  # removed by a concurrent DEL
            continue
        found.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


def runtime_members(
    records: Iterable[EndpointRecord], manifest: NodeManifest
) -> dict[str, frozenset[str]]:
    """Return every runtime ipset's members: the live pods it selects, and their named ports.

    Selector sets are evaluated again against the current manifest; named-port members are
    taken from the record (the pod's ports are only known at ADD), for sets that still exist.
    """
    runtime = {s.name: s for s in manifest.ipsets if s.selector is not None}
    members: dict[str, set[str]] = {name: set() for name in runtime}
    selected: dict[object, tuple[str, ...]] = {}  # replicas share facts: evaluate once
    for r in records:
        if r.facts not in selected:
            selected[r.facts] = selector_sets_for_pod(
                runtime.values(), r.namespace, r.labels, r.namespace_labels
            )
        sets = (name for name in selected[r.facts] if runtime[name].type != NAMED_PORT_TYPE)
        for name, address in set_members(sets, [str(a) for a in r.addresses()]):
            members[name].add(address)
        for name, member in r.members:
            if name in runtime and runtime[name].type == NAMED_PORT_TYPE:
                members[name].add(member)
    return {name: frozenset(found) for name, found in members.items()}


def load_endpoints(
    directory: Path,
    manifest: NodeManifest,
    current: Callable[[EndpointRecord], EndpointRecord] = lambda r: r,
) -> Endpoints:
    """Return the live endpoints recorded under `directory` (none when it does not exist).

    `current` gives each record its pod's current facts (agent/remote.py: the API's labels),
    from which its chains and set memberships are derived.
    """
    records = [current(r) for r in load_records(directory)]
    return Endpoints(
        rules=rules_for_all(records, manifest),
        members=runtime_members(records, manifest),
        records=tuple(records),
        rules_v6=rules_for_all(records, manifest, family=6),
    )
