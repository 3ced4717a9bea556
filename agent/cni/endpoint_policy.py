"""Endpoint policy at ADD/DEL: per-pod chains (contract/endpoint.py) and selector ipsets.

ADD decides from the pod's namespace and labels (Kubernetes API when the netconf has
`kubernetes.kubeconfig`, else `runtimeConfig.labels` / `runtimeConfig.namespaceLabels`) which
compiled policy chains its cali-fw-/cali-tw- chains jump to, restores them with
`iptables-restore --noflush`, and adds its address to the selector ipsets it matches. Each
endpoint is recorded in `<state_dir>/endpoints/<iface>.json` first, so DEL and GC remove exactly
what ADD added, and the agent can merge every live endpoint into the node's rules
(`live_endpoint_rules` with `contract.endpoint.with_endpoints`). Until the agent has
applied the node's iptables.rules (no dispatch chain yet) only the record is written.

A pod with an IPv6 address gets the same chains in ip6tables too (family 6, when the node's
ip6tables rules are applied), and its IPv6 address joins the inet6 twins of its selector and
named-port sets (in the same ipset session as the IPv4 ones). How the ip6tables write is paid:
- the plugin run on its own (launchers with idle 0): the ipset session, iptables-restore and
  ip6tables-restore run at the same time (`_run_together`) and the request waits for all;
- the agent's CNI server (`cache_filter_table`): the ip6tables write of an ADD or DEL runs on a
  writer thread once the answer is sent and the connection closed (agent/cni/later.py,
  started by `write_queued`): the latest write of each interface, those queued meanwhile in
  one ip6tables-restore, under the same lock, so
  a dual-stack ADD answers as fast as an IPv4-only one. Until it lands, the pod's IPv6 traffic
  meets the dispatch chains' "Unknown interface" drop (it fails closed); a failed write is
  reported on stderr and redone by the agent's next reconcile (agent/endpoints.py `rules_v6`).
Both filter tables stay cached across each other's restores (`FilterCache.advance`).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from calicc.agent.cni.errors import POLICY_FAILURE, CniError
from calicc.agent.cni.ipam import write_atomic
from calicc.agent.cni.later import Later
from calicc.agent.cni.live_filter import FilterCache, Snapshot
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
    set_members,
)
from calicc.contract.names import FROM_DISPATCH, FW_PREFIX, V4, V6
from calicc.contract.node import NodeFacts

ENDPOINTS = "endpoints"
Members = tuple[tuple[str, str], ...]
MAX_STDERR = 500  # characters of a failed tool's complaint quoted in the error
FILTERS = FilterCache(enabled=False)  # the agent's CNI server enables it: cache_filter_table()
FILTERS_V6 = FilterCache(enabled=False)  # ip6tables' filter table; FILTERS.lock guards both
TOOLS = {4: "iptables", 6: "ip6tables"}


def cache_filter_table() -> None:
    """Keep the filter tables between requests of this process (agent/cni/live_filter.py).

    The agent's CNI server calls it: it also moves the ip6tables writes after the answer.
    """
    FILTERS.enabled = FILTERS_V6.enabled = FilterCache(enabled=True).enabled
    LATER.enabled = True


def write_queued() -> None:
    """Start the queued ip6tables writes (the server calls it after closing a connection)."""
    LATER.run()


Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class EndpointRecord:
    """One wired pod interface and the facts its policy was derived from.

    `address` is the pod's IPv4 address, or its IPv6 one on an IPv6-only node; `address_v6`
    its IPv6 address whenever it has one (written only then: an IPv4 pod's record is as before).
    Each address joins the selector sets of its family (IPv6 ones the cali60s: twins), and
    the pod gets endpoint chains in ip6tables too when it has an IPv6 address.
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


Job = tuple[Sequence[str], str | None]  # a command and its standard input


def _start(args: Sequence[str]) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError as exc:
        raise CniError(POLICY_FAILURE, f"{args[0]} is not installed") from exc


def _run_together(jobs: Sequence[Job]) -> list[str]:
    """Run the commands at the same time (each fed its input); return their outputs in order.

    Raises:
        CniError: a command is missing or failed (the first failure, after all finished).
    """
    procs = [_start(args) for args, _ in jobs]
    done: list[tuple[str, str]] = [("", "")] * len(jobs)

    def finish(i: int) -> None:
        done[i] = procs[i].communicate(jobs[i][1])

    helpers = [threading.Thread(target=finish, args=(i,)) for i in range(1, len(jobs))]
    for helper in helpers:
        helper.start()
    if jobs:
        finish(0)
    for helper in helpers:
        helper.join()
    for (args, _), proc, (_, err) in zip(jobs, procs, done, strict=True):
        if proc.returncode != 0:
            raise CniError(
                POLICY_FAILURE,
                f"{' '.join(args)} failed: {err.strip()[:MAX_STDERR]}; run `calicc apply`",
            )
    return [out for out, _ in done]


def _run(args: Sequence[str], stdin: str | None = None) -> str:
    return _run_together([(args, stdin)])[0]


def _save() -> str:
    return _run(["iptables-save", "-t", "filter"])


def _save_v6() -> str:
    return _run(["ip6tables-save", "-t", "filter"])


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


def has_v6(record: EndpointRecord) -> bool:
    """Return whether the endpoint has an IPv6 address (and so chains in ip6tables)."""
    return record.address_v6 is not None


def rules_for(record: EndpointRecord, manifest: NodeFacts, family: int = V4) -> EndpointRules:
    """Return the endpoint's chains of `family` under the manifest's current policies."""
    pod = policies_for_pod(
        manifest.policies, record.namespace, record.labels, record.namespace_labels
    )
    return endpoint_rules(record.iface, pod, family)


def rules_for_all(
    records: Iterable[EndpointRecord], manifest: NodeFacts, family: int = V4
) -> tuple[EndpointRules, ...]:
    """Return `rules_for` of every record, choosing the policies once per distinct set of facts.

    Replicas share their namespace and labels, so a node's pods have few distinct facts; the
    choice walks every binding of the node, the chains are cheap. Family 6: the records of
    pods with an IPv6 address only.
    """
    chosen: dict[object, PodPolicies] = {}
    found = []
    for r in records:
        if family == V6 and not has_v6(r):
            continue
        if r.facts not in chosen:
            chosen[r.facts] = policies_for_pod(
                manifest.policies, r.namespace, r.labels, r.namespace_labels
            )
        found.append(endpoint_rules(r.iface, chosen[r.facts], family))
    return tuple(found)


def live_endpoint_rules(state_dir: Path, manifest: NodeFacts) -> list[EndpointRules]:
    """Return the rules of every recorded endpoint: what the agent merges with with_endpoints."""
    return list(rules_for_all(load_records(state_dir), manifest))


def _ipset_job(verb: str, members: Iterable[tuple[str, str]]) -> list[Job]:
    lines = [f"{verb} {name} {member}" for name, member in members]
    return [(["ipset", "restore", "-exist"], "\n".join(lines) + "\n")] if lines else []


def _node_applied(live: str) -> bool:
    return f":{FROM_DISPATCH} " in live


def _members(
    manifest: NodeFacts, facts: PodFacts, sets: Iterable[str], addresses: Sequence[str]
) -> Members:
    members = set_members(sets, addresses)
    for address in addresses:
        members += named_port_members(manifest.ipsets, address, facts.ports)
    return members


def _cache(family: int) -> FilterCache:
    return FILTERS if family == V4 else FILTERS_V6


def _read(families: Iterable[int]) -> dict[int, Snapshot]:
    """Return the live filter table of each family (cached: agent/cni/live_filter.py)."""
    return {f: _cache(f).read(_save if f == V4 else _save_v6) for f in families}


def _program(lives: dict[int, Snapshot], texts: dict[int, str], sets: list[Job]) -> None:
    """Run the ipset session and each family's restore together; record what was restored."""
    jobs = [
        *sets,
        *(([f"{TOOLS[f]}-restore", "--noflush", "--wait"], t) for f, t in texts.items()),
    ]
    _run_together(jobs)
    for family, text in texts.items():
        _cache(family).restored(lives[family], text, steps=len(texts))
    if len(texts) == 1:  # the other family's table is as it was
        (family,) = texts
        _cache(V6 if family == V4 else V4).advance(lives[family], 1)


def _write_v6(batch: dict[str, Callable[[], EndpointRules | None]]) -> None:
    """Add or remove (None) the ip6tables chains of each interface, in one transaction.

    Chains are added only once the node's ip6tables rules are applied; removed regardless.
    """
    with FILTERS.lock:
        lives = _read([V6])
        live = lives[V6].text
        applied = _node_applied(live)
        texts = []
        for iface, wanted in batch.items():
            endpoint = wanted()
            if endpoint is None:
                texts.append(del_restore(iface, live))
            elif applied:
                texts.append(add_restore(endpoint, live))
        merged = merge_restores([t for t in texts if t is not None])
        if merged is not None:
            _program(lives, {V6: merged}, [])


def merge_restores(texts: Sequence[str]) -> str | None:
    """Return one filter-table transaction doing what each of `texts` does, in order.

    Each text is add_restore's or del_restore's for a different interface, computed on the same
    table: none touches another's chains or dispatch rules, so their lines can run together.
    """
    body = [ln for t in texts for ln in t.splitlines() if ln not in ("*filter", "COMMIT", "")]
    return "\n".join(["*filter", *body, "COMMIT", ""]) if body else None


LATER: Later[EndpointRules | None] = Later(_write_v6)


def attach(req: Request, manifest: NodeFacts, iface: str, addresses: Sequence[Address]) -> None:
    """Record the endpoint, then program its chains, dispatch rules and ipset memberships.

    Its chains in iptables, and in ip6tables too for an IPv6 address (each once the node's
    own rules of that family are applied).
    """
    namespace, facts = pod_facts_for(req)
    sets = selector_sets_for_pod(manifest.ipsets, namespace, facts.labels, facts.namespace_labels)
    ipv4 = [str(a) for a in addresses if a.version == V4]
    ipv6 = [str(a) for a in addresses if a.version == V6]
    members = _members(manifest, facts, sets, [*ipv4[:1], *ipv6[:1]])
    record = EndpointRecord(
        iface, req.container_id, req.ifname, (ipv4 or ipv6)[0], namespace,
        facts.labels, facts.namespace_labels, members, ipv6[0] if ipv6 else None,
    )  # fmt: skip
    path = record_path(req.state_dir, iface)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(record.to_json(), sort_keys=True), durable=False)
    later = bool(ipv6) and LATER.enabled
    with FILTERS.lock:
        lives = _read([V4, V6] if ipv6 and not later else [V4])
        if not _node_applied(lives[V4].text):
            return
        texts = {
            f: add_restore(rules_for(record, manifest, f), live.text)
            for f, live in lives.items()
            if _node_applied(live.text)
        }
        _program(lives, texts, _ipset_job("add", members))
    if later:
        LATER.submit(iface, lambda: rules_for(record, manifest, V6))


def _fallback_members(manifest: NodeFacts, addresses: Iterable[Address]) -> Members:
    sets = [s.name for s in manifest.ipsets if s.selector is not None and s.type != "hash:ip,port"]
    return set_members(sets, [str(a) for a in addresses])


def _held(record: EndpointRecord, manifest: NodeFacts) -> Members:
    """Return the memberships to remove: ADD's, and the selector sets the pod is in now.

    The agent adds a running pod to the sets of policies that came after its ADD (both
    families); DEL takes it out of those too rather than leave that to the next reconcile.
    """
    sets = selector_sets_for_pod(
        manifest.ipsets, record.namespace, record.labels, record.namespace_labels
    )
    named = {s.name for s in manifest.ipsets if s.type == "hash:ip,port"}
    now = set_members([s for s in sets if s not in named], [str(a) for a in record.addresses()])
    return tuple(sorted({*record.members, *now}))


def detach(state_dir: Path, manifest: NodeFacts, iface: str, released: Iterable[Address]) -> None:
    """Remove the endpoint's dispatch rules, chains and ipset memberships, then its record."""
    path = record_path(state_dir, iface)
    record = _read_record(path)
    members = _held(record, manifest) if record else _fallback_members(manifest, released)
    v6 = has_v6(record) if record else any(a.version == V6 for a in released)
    later = v6 and LATER.enabled
    with FILTERS.lock:
        lives = _read([V4, V6] if v6 and not later else [V4])
        if _node_applied(lives[V4].text) or f":{FW_PREFIX}{iface} " in lives[V4].text:
            found = {f: del_restore(iface, live.text) for f, live in lives.items()}
            texts = {f: text for f, text in found.items() if text is not None}
            _program(lives, texts, _ipset_job("del", members))
    if later:
        LATER.submit(iface, lambda: None)
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
