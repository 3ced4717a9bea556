"""Endpoint policy at ADD/DEL: per-pod chains (contract/endpoint.py) and selector ipsets.

ADD decides from the pod's namespace and labels (Kubernetes API when the netconf has
`kubernetes.kubeconfig`, else `runtimeConfig.labels` / `runtimeConfig.namespaceLabels`) which
compiled policy chains its cali-fw-/cali-tw- chains jump to, restores them with
`iptables-restore --noflush`, and adds its address to the selector ipsets it matches. Each
endpoint is recorded in `<state_dir>/endpoints/<iface>.json` first, so DEL and GC remove exactly
what ADD added, and the agent can merge every live endpoint into the node's rules
(`live_endpoint_rules` with `contract.endpoint.with_endpoints`). Until the agent has
applied the node's iptables.rules (no dispatch chain yet) only the record is written.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from calicc.agent.cni.errors import POLICY_FAILURE, CniError
from calicc.agent.cni.ipam import write_atomic
from calicc.agent.cni.live_filter import FilterCache
from calicc.agent.cni.naming import pod_ref
from calicc.agent.cni.pod import PodFacts
from calicc.agent.cni.request import Request
from calicc.contract.endpoint import (
    EndpointRules,
    PodPolicies,
    add_restore,
    del_restore,
    endpoint_rules,
    named_port_members,
    policies_for_pod,
    selector_sets_for_pod,
)
from calicc.contract.names import FROM_DISPATCH, FW_PREFIX
from calicc.contract.node import NodeFacts

ENDPOINTS = "endpoints"
Members = tuple[tuple[str, str], ...]
MAX_STDERR = 500  # characters of a failed tool's complaint quoted in the error
FILTERS = FilterCache(enabled=False)  # the agent's CNI server enables it: cache_filter_table()


def cache_filter_table() -> None:
    """Keep the filter table between requests of this process (agent/cni/live_filter.py)."""
    FILTERS.enabled = FilterCache(enabled=True).enabled


Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class EndpointRecord:
    """One wired pod interface and the facts its policy was derived from.

    `address` is the pod's IPv4 address, or its IPv6 one on an IPv6-only node; `address_v6`
    its IPv6 address whenever it has one (written only then: an IPv4 pod's record is as before).
    Selector ipsets are IPv4 sets: only an IPv4 address joins them.
    """

    iface: str
    container_id: str
    ifname: str
    address: str
    namespace: str
    labels: dict[str, str]
    namespace_labels: dict[str, str]
    members: tuple[tuple[str, str], ...]  # (ipset, member) pairs added at ADD
    address_v6: str | None = None

    def addresses(self) -> list[Address]:
        """Return the pod's addresses, IPv4 first."""
        found = [ip_address(self.address)]
        if self.address_v6 is not None and self.address_v6 != self.address:
            found.append(ip_address(self.address_v6))
        return found

    def to_json(self) -> dict[str, Any]:
        """Return the stored form (without address_v6 when the pod has none)."""
        data = asdict(self)
        if data["address_v6"] is None:
            del data["address_v6"]
        return data

    @property
    def facts(self) -> tuple[str, frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
        """Return what policy selects the pod by: namespace, labels, namespace labels."""
        return (
            self.namespace,
            frozenset(self.labels.items()),
            frozenset(self.namespace_labels.items()),
        )


def _labels(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CniError(POLICY_FAILURE, f"runtimeConfig.{what} must be an object of labels")
    return {str(k): str(v) for k, v in value.items()}


def pod_facts_for(req: Request) -> tuple[str, PodFacts]:
    """Return the pod's namespace and facts, from the API server or the runtime config.

    Only a Kubernetes pod (agent/cni/naming.py) is looked up in the API; other runtimes' pods
    live in namespace `default` with the labels of `runtimeConfig`.
    """
    pod = pod_ref(req.args, req.container_id)
    kube = req.conf.get("kubernetes")
    if isinstance(kube, dict) and kube.get("kubeconfig") and pod.in_api:
        # The API client (ssl, http.client, yaml) costs more to import than the rest of an ADD:
        # a netconf without a kubeconfig never loads it.
        from calicc.agent.cni.kube import pod_facts  # noqa: PLC0415

        path = req.root / str(kube["kubeconfig"]).lstrip("/")
        return pod.namespace, pod_facts(path, pod.namespace, pod.name)
    runtime = req.conf.get("runtimeConfig") or {}
    labels = _labels(runtime.get("labels"), "labels")
    namespace_labels = _labels(runtime.get("namespaceLabels"), "namespaceLabels")
    return pod.namespace, PodFacts(labels, namespace_labels)


def _run(args: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise CniError(POLICY_FAILURE, f"{args[0]} is not installed") from exc
    if done.returncode != 0:
        raise CniError(
            POLICY_FAILURE,
            f"{' '.join(args)} failed: {done.stderr.strip()[:MAX_STDERR]}; run `calicc apply`",
        )
    return done.stdout


def _save() -> str:
    return _run(["iptables-save", "-t", "filter"])


def record_path(state_dir: Path, iface: str) -> Path:
    """Return where the endpoint record of `iface` lives."""
    return state_dir / ENDPOINTS / f"{iface}.json"


def _read_record(path: Path) -> EndpointRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # removed by a concurrent DEL
        return None
    except ValueError:  # written without fsync and cut by a power loss: nothing to undo
        return None
    data["members"] = tuple(tuple(m) for m in data["members"])
    return EndpointRecord(**data)


def load_records(state_dir: Path) -> list[EndpointRecord]:
    """Return every recorded endpoint, sorted by interface (for the agent and GC)."""
    found = (_read_record(p) for p in sorted((state_dir / ENDPOINTS).glob("*.json")))
    return [r for r in found if r is not None]


def rules_for(record: EndpointRecord, manifest: NodeFacts) -> EndpointRules:
    """Return the endpoint's chains under the manifest's current policies."""
    pod = policies_for_pod(
        manifest.policies, record.namespace, record.labels, record.namespace_labels
    )
    return endpoint_rules(record.iface, pod)


def rules_for_all(
    records: Iterable[EndpointRecord], manifest: NodeFacts
) -> tuple[EndpointRules, ...]:
    """Return `rules_for` of every record, choosing the policies once per distinct set of facts.

    Replicas share their namespace and labels, so a node's pods have few distinct facts; the
    choice walks every binding of the node, the chains are cheap.
    """
    chosen: dict[object, PodPolicies] = {}
    found = []
    for r in records:
        if r.facts not in chosen:
            chosen[r.facts] = policies_for_pod(
                manifest.policies, r.namespace, r.labels, r.namespace_labels
            )
        found.append(endpoint_rules(r.iface, chosen[r.facts]))
    return tuple(found)


def live_endpoint_rules(state_dir: Path, manifest: NodeFacts) -> list[EndpointRules]:
    """Return the rules of every recorded endpoint: what the agent merges with with_endpoints."""
    return list(rules_for_all(load_records(state_dir), manifest))


def _ipset(verb: str, members: Iterable[tuple[str, str]]) -> None:
    lines = [f"{verb} {name} {member}" for name, member in members]
    if lines:
        _run(["ipset", "restore", "-exist"], "\n".join(lines) + "\n")


def _node_applied(live: str) -> bool:
    return f":{FROM_DISPATCH} " in live


def _members(manifest: NodeFacts, facts: PodFacts, sets: Iterable[str], address: str) -> Members:
    members = tuple(sorted({(s, address) for s in sets}))
    return members + named_port_members(manifest.ipsets, address, facts.ports)


def attach(req: Request, manifest: NodeFacts, iface: str, addresses: Sequence[Address]) -> None:
    """Record the endpoint, then program its chains, dispatch rules and ipset memberships."""
    namespace, facts = pod_facts_for(req)
    sets = selector_sets_for_pod(manifest.ipsets, namespace, facts.labels, facts.namespace_labels)
    ipv4 = [str(a) for a in addresses if a.version == 4]  # noqa: PLR2004
    ipv6 = [str(a) for a in addresses if a.version == 6]  # noqa: PLR2004
    members = _members(manifest, facts, sets, ipv4[0]) if ipv4 else ()
    record = EndpointRecord(
        iface, req.container_id, req.ifname, (ipv4 or ipv6)[0], namespace,
        facts.labels, facts.namespace_labels, members, ipv6[0] if ipv6 else None,
    )  # fmt: skip
    path = record_path(req.state_dir, iface)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(record.to_json(), sort_keys=True), durable=False)
    with FILTERS.lock:
        live = FILTERS.read(_save)
        if not _node_applied(live.text):
            return
        _ipset("add", members)
        text = add_restore(rules_for(record, manifest), live.text)
        _run(["iptables-restore", "--noflush", "--wait"], text)
        FILTERS.restored(live, text)


def _fallback_members(manifest: NodeFacts, addresses: Iterable[Address]) -> list[tuple[str, str]]:
    sets = [s.name for s in manifest.ipsets if s.selector is not None and s.type != "hash:ip,port"]
    return [(s, str(a)) for s in sets for a in addresses if a.version == 4]  # noqa: PLR2004


def detach(state_dir: Path, manifest: NodeFacts, iface: str, released: Iterable[Address]) -> None:
    """Remove the endpoint's dispatch rules, chains and ipset memberships, then its record."""
    path = record_path(state_dir, iface)
    record = _read_record(path)
    members = list(record.members) if record else _fallback_members(manifest, released)
    with FILTERS.lock:
        live = FILTERS.read(_save)
        if _node_applied(live.text) or f":{FW_PREFIX}{iface} " in live.text:
            _ipset("del", members)
            text = del_restore(iface, live.text)
            if text is not None:
                _run(["iptables-restore", "--noflush", "--wait"], text)
                FILTERS.restored(live, text)
    path.unlink(missing_ok=True)


def undo_attach(state_dir: Path, manifest: NodeFacts, iface: str) -> None:
    """Roll back `attach` of a failed ADD: what its record lists, then the record itself.

    Without a record attach failed before it wrote one and added nothing. The record goes
    even when the rules cannot be read, so a failed ADD never leaves one behind.
    """
    path = record_path(state_dir, iface)
    if _read_record(path) is None:
        return
    try:
        detach(state_dir, manifest, iface, [])
    finally:
        path.unlink(missing_ok=True)


def collect(
    state_dir: Path, manifest: NodeFacts, keep: set[tuple[str, str]]
) -> list[EndpointRecord]:
    """GC: detach every recorded endpoint whose (container id, ifname) is not in `keep`."""
    gone = [r for r in load_records(state_dir) if (r.container_id, r.ifname) not in keep]
    for record in gone:
        detach(state_dir, manifest, record.iface, record.addresses())
    return gone
