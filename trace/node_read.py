"""A node read the way its agent reads it: the bundle through the agent's loader.

agent/bundle.py `load_bundle` checks every digest and assembles node.json with the cluster
files into the node's manifest, so the trace answers for exactly the bytes the node would apply
and refuses a tree a node would refuse. From it come the node's facts (trace/node.py) and its
rules text: the node's own file (the role's iptables rules, or ip6tables rules) with the
endpoint chains of its pods merged in and its host endpoints, by the functions the agent applies
them with (contract/endpoint.py `with_endpoints`, contract/host.py `with_host`, in agent/apply.py's
order), plus the hook rules every node keeps at the top or bottom of the built-in chains
(cluster.json `jump_rules`; in IPv6 only those whose target chain the file declares, as the
agent keeps them: agent/iptables.py `family_jumps`). A pod's endpoint chains are the CNI
plugin's (agent/cni/endpoint_policy.py `rules_for_all` on the record ADD writes), so rule
numbers are the node's (`iptables -L CHAIN --line-numbers`) for every chain calicc owns.

This module holds every import the loader needs (pydantic's models among them); the trace
imports it only when a node is not in the user's cache (trace/node_cache.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.bundle import Bundle, load_bundle
from calicc.agent.cni.endpoint_policy import EndpointRecord, rules_for_all
from calicc.agent.iptables import family_jumps, parse_rules
from calicc.contract.endpoint import with_endpoints
from calicc.contract.host import with_host
from calicc.contract.manifest import JumpRule
from calicc.contract.names import CONFLIST, IP6TABLES_FILE, IPTABLES_FILE, V4, V6
from calicc.trace.errors import TraceError
from calicc.trace.node import LinkFact, PoolFact, RouteFact, SetFact, TraceNode
from calicc.trace.policy import PodAt

BUILTIN_POLICY = "ACCEPT"  # what the tree says of the built-in chains' own policy: nothing


def read_bundle(directory: Path, node: str) -> Bundle:
    """Return the node's verified bundle.

    Raises:
        TraceError: the agent would refuse it (a digest, a file, a field), with its reason.
    """
    try:
        return load_bundle(directory, node)
    except AgentError as exc:
        raise TraceError(str(exc)) from exc


def facts_of(bundle: Bundle) -> TraceNode:
    """Return what the trace takes from the node's assembled manifest."""
    manifest = bundle.manifest
    return TraceNode(
        name=manifest.node.name,
        pod_mtu=manifest.pod_mtu,
        link_mtu=manifest.link_mtu,
        links=tuple(LinkFact(link.name, link.mtu) for link in manifest.links),
        routes=tuple(RouteFact(r.dst, r.type, r.via, r.dev, r.onlink) for r in manifest.routes),
        pools=tuple(
            PoolFact(p.name, p.cidr, p.encapsulation, p.mode, p.nat_outgoing)
            for p in manifest.pools
        ),
        ipsets=tuple(SetFact(s.name, s.type, s.members, s.selector) for s in manifest.ipsets),
        knows_api=knows_the_api(bundle),
    )


def record_of(pod: PodAt) -> EndpointRecord:
    """Return the endpoint record the CNI plugin writes for the pod at ADD."""
    v4 = [str(a) for a in pod.addresses if a.version == V4]
    v6 = [str(a) for a in pod.addresses if a.version == V6]
    return EndpointRecord(
        iface=pod.iface, container_id="", ifname="eth0", address=(v4 or v6)[0],
        namespace=pod.namespace, labels=dict(pod.labels),
        namespace_labels=dict(pod.namespace_labels), members=(),
        address_v6=v6[0] if v6 else None,
    )  # fmt: skip


def knows_the_api(bundle: Bundle) -> bool:
    """Return whether the node's CNI plugin reads pods from the Kubernetes API.

    Its conflist's calicc plugin has a `kubernetes` section: only then are container ports,
    and so named ports, known; without it a named port matches nothing.
    """
    if not bundle.has(CONFLIST):
        return False
    plugins = json.loads(bundle.text(CONFLIST)).get("plugins") or []
    return any(p.get("type") == "calicc" and "kubernetes" in p for p in plugins)


def _hooks(text: str, jumps: Sequence[JumpRule], tables: Sequence[str]) -> str:
    """Return `text` with the built-in chains and the hook rules `jumps` in them."""
    out: list[str] = []
    table = ""
    for line in text.splitlines():
        out.append(line)
        if line.startswith("*"):
            table = line[1:].strip()
            if table not in tables:
                continue
            rules = [j for j in jumps if j.table == table]
            for chain in sorted({j.chain for j in rules}):
                out.append(f":{chain} {BUILTIN_POLICY} [0:0]")
            out += [f"-A {j.chain} {j.rule}" for j in rules]
    return "\n".join(out) + "\n"


def node_text(bundle: Bundle, pods: Sequence[PodAt], family: int) -> str:
    """Return the node's rules text of `family` with its pods' endpoint chains and the hooks."""
    manifest = bundle.manifest
    records = [record_of(p) for p in pods]
    name = IPTABLES_FILE if family == V4 else IP6TABLES_FILE
    if not bundle.has(name):
        return ""
    text = bundle.text(name)
    if family == V4:
        text = with_endpoints(text, rules_for_all(records, manifest, V4))
        text = with_host(text, manifest.host)
        jumps = manifest.jump_rules
    else:  # the hooks the agent keeps in IPv6: those into chains the file declares
        text = with_host(text, manifest.host, family=6)
        jumps = family_jumps(manifest.jump_rules, parse_rules(text))
        text = with_endpoints(text, rules_for_all(records, manifest, V6))
    declared = re.findall(r"^\*(\w+)$", text, re.MULTILINE)
    return _hooks(text, jumps, declared)
