"""What the manifest models let through but the agent must not: names, paths, numbers.

Names reach restore input and netlink, paths reach the filesystem under --root: a newline in a
set member would add a restore command, a ".." would write outside the root. `check_manifest`
runs on the assembled manifest (node.json and the cluster files together); `check_node_file`
runs on node.json alone, before any listed file is read, on what reading them depends on (the
node's name and every path, a role's source inside the cluster part); `unlisted_sources` and
`check_cluster_index` run once cluster/index.json is read, before the files it lists are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.files import path_problem
from calicc.agent.iptables import is_owned_jump
from calicc.contract.manifest import ClusterIndex, FileEntry, NodeFile, NodeManifest
from calicc.contract.names import (
    CHAIN_MAX,
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    IFNAMSIZ,
    IPSET_MAX,
    NODE_BUILT_FROM,
    NODES_TABLE,
    is_cluster_file,
)
from calicc.contract.names import OWNED_SET_PREFIX as SET_PREFIX
from calicc.contract.patterns import ANY_CONTROL, DNS1123_SUBDOMAIN

MAX_SHOWN = 20  # problems listed in one error (the count says how many more)
MAX_LINE = 1000  # characters of one problem (hostile keys and values are cut before this)

NODE_NAME = DNS1123_SUBDOMAIN
IFNAME = re.compile(rf"[^\s/:\x00-\x1f\x7f]{{1,{IFNAMSIZ}}}")  # the kernel's dev_valid_name
SET_NAME = re.compile(
    re.escape(SET_PREFIX) + rf"[A-Za-z0-9_.:-]{{0,{IPSET_MAX - len(SET_PREFIX)}}}"
)
MEMBER = re.compile(r"[0-9A-Za-z.:/,_-]{1,128}")
CHAIN = re.compile(rf"[A-Za-z0-9_.-]{{1,{CHAIN_MAX}}}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
CONTROL = ANY_CONTROL
RESERVED_PROTOCOLS = range(5)  # rtnetlink unspec, redirect, kernel, boot, static: not ours
MTU = range(68, 65536)
ASSEMBLED_FROM = (CLUSTER_SETTINGS, NODES_TABLE, CLUSTER_POLICY)  # what assembling reads
POLICY_FIELDS = ("ipsets[", "policies[")  # check_manifest fields cluster/policy.json holds
SETTINGS_FIELDS = ("jump_rules[",)  # and those cluster/cluster.json holds


def quote_field(key: str) -> str:
    """Return a field name as a path segment: bare when plain, else JSON-quoted (cut to 80)."""
    if len(key) <= 80 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):  # noqa: PLR2004
        return key
    shown = json.dumps(key[:80])
    return shown if len(key) <= 80 else shown[:-1] + '..."'  # noqa: PLR2004


def _bad(field: str, value: object, why: str) -> str:
    return f"{field}: {json.dumps(value)[:80]} {why}"


def _check_node(m: NodeFile | NodeManifest, node: str | None) -> list[str]:
    name = m.node.name
    out = []
    if len(name) > 253 or not NODE_NAME.fullmatch(name):  # noqa: PLR2004
        out.append(_bad("node.name", name, "is not a DNS-1123 node name"))
    elif node is not None and name != node:
        out.append(_bad("node.name", name, f"is not this node ({node}): wrong node's bundle"))
    if m.node.interface is not None and not IFNAME.fullmatch(m.node.interface):
        out.append(_bad("node.interface", m.node.interface, "is not an interface name"))
    return out


def _check_source(field: str, rel: str, source: str) -> list[str]:
    """Return why a role's `source` cannot name the shared cluster file holding its text."""
    if is_cluster_file(rel):
        why: str | None = "is not allowed: a cluster file (cluster/...) is listed with its digest"
    elif not (why := path_problem(source)) and not is_cluster_file(source):
        why = "is not a file of the cluster part (cluster/...)"
    return [_bad(f"{field}.source", source, why)] if why else []


def _check_entries(files: dict[str, FileEntry]) -> list[str]:
    out = []
    for rel, entry in sorted(files.items()):
        field = f"files.{quote_field(rel)}"
        if entry.digest is not None and not DIGEST.fullmatch(entry.digest):
            out.append(_bad(f"{field}.digest", entry.digest, 'is not "sha256:" + 64 hex digits'))
        if entry.source is not None:
            out += _check_source(field, rel, entry.source)
        if entry.install is not None and (why := path_problem(entry.install)):
            out.append(_bad(f"{field}.install", entry.install, f"{why} (it is under --root)"))
    return out


def _check_listed_paths(files: dict[str, FileEntry]) -> list[str]:
    return [
        f"files.{quote_field(rel)}: the path {why}"
        for rel in sorted(files)
        if (why := path_problem(rel)) is not None
    ]


def _check_paths(m: NodeFile | NodeManifest) -> list[str]:
    out = _check_entries(m.files)
    if why := path_problem(m.bird.config):
        out.append(_bad("bird.config", m.bird.config, why))
    elif m.bird.enabled and m.bird.config not in m.files:
        out.append(_bad("bird.config", m.bird.config, "is not one of the listed files"))
    for rel, ref in sorted(m.bird.secrets.items()):
        if why := path_problem(rel):
            out.append(_bad(f"bird.secrets.{quote_field(rel)}", rel, why))
        if ref.file is not None and (why := path_problem(str(ref.file).lstrip("/"))):
            out.append(_bad(f"bird.secrets.{quote_field(rel)}.file", ref.file, why))
    return out


def _check_devices(m: NodeManifest) -> list[str]:
    devices: list[tuple[str, str | None]] = [
        (f"links[{i}].name", x.name) for i, x in enumerate(m.links)
    ]
    devices += [(f"links[{i}].parent", x.parent) for i, x in enumerate(m.links)]
    devices += [(f"routes[{i}].dev", x.dev) for i, x in enumerate(m.routes)]
    devices += [(f"neighbors[{i}].dev", x.dev) for i, x in enumerate(m.neighbors)]
    devices += [(f"fdb[{i}].dev", x.dev) for i, x in enumerate(m.fdb)]
    out = [
        _bad(f, v, "is not an interface name (1-15 characters, no space, / or :)")
        for f, v in devices
        if v is not None and (not IFNAME.fullmatch(v) or v in (".", ".."))
    ]
    macs = [(f"links[{i}].mac", x.mac) for i, x in enumerate(m.links)]
    macs += [(f"neighbors[{i}].lladdr", x.lladdr) for i, x in enumerate(m.neighbors)]
    macs += [(f"fdb[{i}].lladdr", x.lladdr) for i, x in enumerate(m.fdb)]
    out += [_bad(f, v, "is not a MAC address") for f, v in macs if v and not MAC.fullmatch(v)]
    return out


def _check_sysctls(m: NodeManifest) -> list[str]:
    out = []
    for key, value in sorted(m.sysctls.items()):
        field = f"sysctls.{quote_field(key)}"
        if why := path_problem(key if "/" in key else key.replace(".", "/")):
            out.append(_bad(field, key, f"is not a sysctl under /proc/sys: the key {why}"))
        if CONTROL.search(value) or len(value) > 256:  # noqa: PLR2004
            out.append(_bad(field, value, "holds control characters or is too long"))
    return out


def _check_ipsets(m: NodeManifest) -> list[str]:
    out = []
    seen: set[str] = set()
    for i, s in enumerate(m.ipsets):
        if not SET_NAME.fullmatch(s.name):
            out.append(_bad(f"ipsets[{i}].name", s.name, f"is not an owned set ({SET_PREFIX}...)"))
        if s.name in seen:
            out.append(_bad(f"ipsets[{i}].name", s.name, "is listed twice"))
        seen.add(s.name)
        bad = [(j, x) for j, x in enumerate(s.members) if not MEMBER.fullmatch(x)]
        out += [_bad(f"ipsets[{i}].members[{j}]", x, "is not a set member") for j, x in bad[:3]]
    return out


def _check_jumps(m: NodeManifest) -> list[str]:
    out = []
    for i, j in enumerate(m.jump_rules):
        if not CHAIN.fullmatch(j.chain):
            out.append(_bad(f"jump_rules[{i}].chain", j.chain, "is not a chain name"))
        try:
            owned = not CONTROL.search(j.rule) and is_owned_jump(j.rule)
        except ValueError:  # unbalanced quotes
            owned = False
        if not owned:
            out.append(_bad(f"jump_rules[{i}].rule", j.rule, "is not one line jumping to cali-"))
    return out


def _check_numbers(m: NodeManifest) -> list[str]:
    out = []
    if m.route_protocol in RESERVED_PROTOCOLS or not 0 < m.route_protocol < 256:  # noqa: PLR2004
        out.append(_bad("route_protocol", m.route_protocol, "is not a protocol 5-255 of its own"))
    mtus = [("link_mtu", m.link_mtu), ("pod_mtu", m.pod_mtu)]
    mtus += [(f"links[{i}].mtu", x.mtu) for i, x in enumerate(m.links)]
    out += [_bad(f, v, "is not an MTU (68-65535)") for f, v in mtus if v not in MTU]
    for i, x in enumerate(m.links):
        if x.vni is not None and not 0 <= x.vni < 2**24:
            out.append(_bad(f"links[{i}].vni", x.vni, "is not a VXLAN VNI (0-16777215)"))
        if x.port is not None and not 0 < x.port < 65536:  # noqa: PLR2004
            out.append(_bad(f"links[{i}].port", x.port, "is not a UDP port"))
    return out


def check_manifest(m: NodeManifest, node: str | None = None) -> list[str]:
    """Return "field: problem" for what the manifest model lets through but the agent must not.

    Names reach restore input and netlink, paths reach the filesystem under --root: a newline
    in a set member would add a restore command, a ".." would write outside the root.
    """
    checks = (_check_paths, _check_devices, _check_sysctls, _check_ipsets, _check_jumps)
    return _check_node(m, node) + [p for check in checks for p in check(m)] + _check_numbers(m)


def _unlisted(files: dict[str, FileEntry], required: tuple[str, ...], why: str) -> list[str]:
    return [f"files: {rel} is not listed ({why})" for rel in required if rel not in files]


def check_node_file(m: NodeFile, node: str | None = None) -> list[str]:
    """Return "field: problem" for node.json alone: what must hold before its files are read.

    The node's name (the wrong node's bundle is refused before anything else), every listed
    path (relative, no ".."), each role's source (a cluster file), and the cluster settings it
    names as built from.
    """
    out = _check_node(m, node) + _check_paths(m) + _check_listed_paths(m.files)
    why = "node.json names the cluster settings it was built from; rebuild with this calicc"
    return out + _unlisted(m.files, NODE_BUILT_FROM, why)


def check_cluster_index(index: ClusterIndex, node_file: NodeFile) -> list[str]:
    """Return "field: problem" for cluster/index.json before the cluster files are read."""
    out = []
    if index.cluster != node_file.cluster:
        why = f"is not node.json's cluster ({node_file.cluster})"
        out.append(_bad("cluster", index.cluster, why))
    out += [
        _bad(f"files.{quote_field(rel)}", rel, "is not a file of the cluster part (cluster/...)")
        for rel in sorted(index.files)
        if not is_cluster_file(rel)
    ]
    out += _check_entries(index.files) + _check_listed_paths(index.files)
    return out + _unlisted(index.files, ASSEMBLED_FROM, "a node's manifest is assembled from it")


def unlisted_sources(node_file: NodeFile, index: ClusterIndex) -> list[str]:
    """Return "field: problem" for each role of node.json whose source cluster/index.json lacks.

    A node.json of another build than the cluster part (another pod MTU or encapsulation)
    names a shared file this cluster part does not hold.
    """
    return [
        _bad(
            f"files.{quote_field(rel)}.source",
            entry.source,
            f"is not a file {CLUSTER_INDEX} lists: node.json and the cluster files come from "
            "different builds (copy the node's directory and the cluster part of one build)",
        )
        for rel, entry in sorted(node_file.files.items())
        if entry.source is not None and entry.source not in index.files
    ]


def cluster_file_of(problem: str) -> str | None:
    """Return the cluster file holding what a check_manifest problem is about (None: node.json)."""
    if problem.startswith(POLICY_FIELDS):
        return CLUSTER_POLICY
    if problem.startswith(SETTINGS_FIELDS):
        return CLUSTER_SETTINGS
    return None


def problems_error(where: Path, problems: list[str]) -> AgentError:
    """Return one error listing `problems` (at most MAX_SHOWN, each cut to MAX_LINE)."""
    shown = [p if len(p) <= MAX_LINE else p[: MAX_LINE - 3] + "..." for p in problems[:MAX_SHOWN]]
    if len(problems) == 1:
        return AgentError(shown[0])
    more = [f"  ... and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else []
    head = f"{len(problems)} problems in the bundle {where}:"
    return AgentError("\n".join([head, *(f"  {p}" for p in shown), *more]))
