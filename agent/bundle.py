"""Read a node bundle and prove it safe before the agent touches anything.

A bundle is node.json plus the files it lists. `load_bundle` checks, in this order, and stops at
the first stage that finds a problem (reporting every problem of that stage at once):

1. node.json: a regular file inside the bundle, at most MAX_MANIFEST_BYTES, UTF-8, JSON without
   duplicate keys, of a bundle_version this agent reads, valid against the manifest model
   (contract/manifest.py, the shared contract).
2. What the model cannot say (`check_manifest`): the node name (a DNS-1123 name, and the one
   expected on this node), every path relative and without ".." (bundle files, install targets,
   BIRD includes and secret files, sysctl keys), names that end up in restore input or netlink
   (ipsets, members, jump rules, devices) free of whitespace and control characters, owned
   prefixes for sets and jump targets, numbers in their kernel ranges.
3. Every listed file: inside the bundle once symlinks are resolved, a regular file, at most
   MAX_FILE_BYTES (MAX_BUNDLE_BYTES in all), UTF-8, and of the listed digest.

The files are read once, here, and kept: the agent applies exactly the bytes it verified, even
if the bundle directory changes while it runs (a push copying the next bundle).
Every message names the file and the field; nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from calicc.agent import AgentError
from calicc.agent.files import ReadProblem, is_inside, path_problem, read_bounded
from calicc.agent.iptables import is_owned_jump
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import BUNDLE_VERSION, CHAIN_MAX, IFNAMSIZ, IPSET_MAX, MANIFEST
from calicc.contract.names import OWNED_SET_PREFIX as SET_PREFIX
from calicc.contract.patterns import ANY_CONTROL, DNS1123_SUBDOMAIN

# Within a 256 MB address space: a 4 MiB node.json of tiny objects peaks at ~175 MB RSS while
# validated; a node of a 1,000-node VXLAN cluster needs well under 1 MiB.
MAX_MANIFEST_BYTES = 4 * 2**20
MAX_FILE_BYTES = 4 * 2**20
MAX_BUNDLE_BYTES = 16 * 2**20
MAX_SHOWN = 20  # problems listed in one error (the count says how many more)
MAX_LINE = 1000  # characters of one problem (hostile keys and values are cut before this)


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory, manifest, node.json's digest and the verified bytes."""

    directory: Path
    manifest: NodeManifest
    digest: str
    raw: bytes
    contents: Mapping[str, bytes]

    def data(self, rel: str) -> bytes:
        """Return the verified bytes of a listed bundle file (read once, by load_bundle)."""
        return self.contents[rel]

    def text(self, rel: str) -> str:
        """Return the text of a listed bundle file (digest already verified)."""
        return self.data(rel).decode("utf-8")

    def has(self, rel: str) -> bool:
        """Return whether the manifest lists `rel`."""
        return rel in self.manifest.files

    def tree(self) -> dict[str, bytes]:
        """Return every file of the bundle, node.json included (relative path -> bytes)."""
        files = {rel: self.data(rel) for rel in self.manifest.files}
        return {**files, MANIFEST: self.raw}


def file_digest(data: bytes) -> str:
    """Return the digest in the compiler's format ("sha256:<hex>")."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


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


def quote_field(key: str) -> str:
    """Return a field name as a path segment: bare when plain, else JSON-quoted (cut to 80)."""
    if len(key) <= 80 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):  # noqa: PLR2004
        return key
    shown = json.dumps(key[:80])
    return shown if len(key) <= 80 else shown[:-1] + '..."'  # noqa: PLR2004


def _bad(field: str, value: object, why: str) -> str:
    return f"{field}: {json.dumps(value)[:80]} {why}"


def _check_node(m: NodeManifest, node: str | None) -> list[str]:
    name = m.node.name
    out = []
    if len(name) > 253 or not NODE_NAME.fullmatch(name):  # noqa: PLR2004
        out.append(_bad("node.name", name, "is not a DNS-1123 node name"))
    elif node is not None and name != node:
        out.append(_bad("node.name", name, f"is not this node ({node}): wrong node's bundle"))
    if m.node.interface is not None and not IFNAME.fullmatch(m.node.interface):
        out.append(_bad("node.interface", m.node.interface, "is not an interface name"))
    return out


def _check_paths(m: NodeManifest) -> list[str]:
    out = []
    for rel, entry in sorted(m.files.items()):
        field = f"files.{quote_field(rel)}"
        if not DIGEST.fullmatch(entry.digest):
            out.append(_bad(f"{field}.digest", entry.digest, 'is not "sha256:" + 64 hex digits'))
        if entry.install is not None and (why := path_problem(entry.install)):
            out.append(_bad(f"{field}.install", entry.install, f"{why} (it is under --root)"))
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


def problems_error(where: Path, problems: list[str]) -> AgentError:
    """Return one error listing `problems` (at most MAX_SHOWN, each cut to MAX_LINE)."""
    shown = [p if len(p) <= MAX_LINE else p[: MAX_LINE - 3] + "..." for p in problems[:MAX_SHOWN]]
    if len(problems) == 1:
        return AgentError(shown[0])
    more = [f"  ... and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else []
    head = f"{len(problems)} problems in the bundle {where}:"
    return AgentError("\n".join([head, *(f"  {p}" for p in shown), *more]))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _decode(path: Path, raw: bytes) -> Any:
    """Return the JSON value of node.json, or raise an error naming the file and place."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgentError(
            f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise AgentError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    except _DuplicateKey as exc:
        key = quote_field(str(exc))
        raise AgentError(f"{path}: {key}: the key appears twice in one object") from exc
    except RecursionError as exc:
        raise AgentError(f"{path}: not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise AgentError(f"{path}: not valid JSON: {str(exc)[:200]}") from exc


def _field(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{quote_field(p)}" for p in loc)[1:]


def _parse(path: Path, raw: bytes) -> NodeManifest:
    data = _decode(path, raw)
    if not isinstance(data, dict):
        raise AgentError(f"{path}: the manifest must be a JSON object, not {type(data).__name__}")
    version = data.get("bundle_version")
    if version != BUNDLE_VERSION:
        shown = repr(version)[:40]
        raise AgentError(
            f"{path}: bundle_version: {shown} is not one this agent knows "
            f"(it reads bundle_version {BUNDLE_VERSION}); rebuild with a matching calicc"
        )
    try:
        return NodeManifest.model_validate(data)
    except ValidationError as exc:
        found = [f"{path}: {_field(e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise problems_error(path.parent, found) from exc


def _read_file(directory: Path, rel: str) -> bytes:
    """Return a listed file's bytes, checked to be a regular file inside the bundle."""
    path = directory / rel
    if not path.is_symlink() and not path.exists():
        raise ReadProblem(f"{path} is missing")
    if not is_inside(directory, path):
        raise ReadProblem(f"{path} resolves outside the bundle (a symlink out of it)")
    data = read_bounded(path, MAX_FILE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadProblem(f"{path} is not UTF-8 text (offset {exc.start})") from exc
    return data


def _read_files(directory: Path, manifest: NodeManifest) -> dict[str, bytes]:
    """Return every listed file, each of its digest; raise listing every problem found."""
    where = directory / MANIFEST
    contents: dict[str, bytes] = {}
    problems: list[str] = []
    total = 0
    for rel, entry in sorted(manifest.files.items()):
        field = f"files.{quote_field(rel)}"
        try:
            data = _read_file(directory, rel)
        except ReadProblem as exc:
            problems.append(f"{where}: {field}: {exc}")
            continue
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            problems.append(f"{where}: files: more than {MAX_BUNDLE_BYTES} bytes in all")
            break
        actual = file_digest(data)
        if actual != entry.digest:
            problems.append(
                f"{where}: {field}.digest: {directory / rel} has digest {actual}, not the listed "
                f"{entry.digest[:80]} (the bundle was changed after the build; rebuild or recopy)"
            )
        contents[rel] = data
    if problems:
        raise problems_error(directory, problems)
    return contents


def _read_manifest(directory: Path) -> bytes:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise AgentError(f"{directory}: not a bundle directory (it should hold {MANIFEST})")
    if path.is_symlink() and not is_inside(directory, path):
        raise AgentError(f"{path}: resolves outside the bundle (a symlink out of it)")
    try:
        return read_bounded(path, MAX_MANIFEST_BYTES)
    except ReadProblem as exc:
        raise AgentError(f"{exc} (the bundle manifest)") from exc


def load_bundle(directory: Path, node: str | None = None) -> Bundle:
    """Read and verify the bundle in `directory` (see the module docstring for every check).

    Args:
        directory: the bundle (holds node.json).
        node: the node name the bundle must be for; None accepts any valid name.

    Raises:
        AgentError: naming the file and field of every problem of the first failing stage.
    """
    path = directory / MANIFEST
    raw = _read_manifest(directory)
    manifest = _parse(path, raw)
    problems = [f"{path}: {p}" for p in check_manifest(manifest, node)]
    problems += [
        f"{path}: files.{quote_field(rel)}: the path {why}"
        for rel in sorted(manifest.files)
        if (why := path_problem(rel)) is not None
    ]
    if problems:
        raise problems_error(directory, problems)
    contents = _read_files(directory, manifest)
    return Bundle(directory, manifest, file_digest(raw), raw, contents)


def installed_node(copy: Path) -> str | None:
    """Return the node name of an installed bundle copy, or None when there is none readable."""
    try:
        data = json.loads(read_bounded(copy / MANIFEST, MAX_MANIFEST_BYTES))
        name = data["node"]["name"]
    except (ReadProblem, ValueError, KeyError, TypeError, RecursionError):
        return None
    return name if isinstance(name, str) else None
