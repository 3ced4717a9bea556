"""Read a node bundle and prove it safe before the agent touches anything.

A bundle is node.json and the files it lists, plus the cluster part: cluster/index.json and the
files it lists (`cluster/...`: in the bundle's cluster/ directory, or in rendered/cluster/ for a
node directory of a rendered tree; agent/bundle_files.py). A node's own files (bird.conf) carry
their digests in node.json; each role a shared file plays (routes script, sysctl, conflist,
iptables rules: contract/names.py) names its `source` instead, a cluster file whose digest
cluster/index.json lists. `load_bundle` checks, in this order, and stops at the first stage that
finds a problem (reporting every problem of that stage at once):

1. node.json: a regular file inside the bundle, at most MAX_MANIFEST_BYTES, UTF-8, JSON without
   duplicate keys, of a bundle_version this agent reads, valid against `NodeFile`
   (contract/manifest.py, the shared contract).
2. What reading the files depends on (`check_node_file`): the node name (a DNS-1123 name, and
   the one expected on this node), every listed path, install target, BIRD include and secret
   file relative and without "..", digests well formed, every role's source a file of the
   cluster part, the cluster settings it was built from listed.
3. cluster/index.json: read and validated like node.json (`ClusterIndex`), of node.json's
   cluster, its paths checked the same way, every file with its digest; the cluster settings
   node.json was built from (cluster.json) are the ones it lists, and it lists every role's
   source: else node.json and the cluster files come from different builds and the bundle is
   refused, naming the file and both digests (or node.json's field and the missing file).
4. Every listed file, the cluster's included: inside its base once symlinks are resolved, a
   regular file, at most MAX_FILE_BYTES (MAX_BUNDLE_BYTES in all), UTF-8, and of the digest
   node.json (node files) or cluster/index.json (cluster files, role sources among them) lists.
5. cluster.json (`ClusterSettings`), policy.json (`ClusterPolicy`) and nodes.tsv
   (contract/nodes_table.py) parse, and assemble with node.json into the node's `NodeManifest`
   (contract/assemble.py): the same cluster, and the node table's row of the node the one
   node.json states (a table of a build that moved this node is refused).
6. What the model cannot say (`check_manifest`, on the assembled manifest): names that end up in
   restore input or netlink (ipsets, members, jump rules, devices, MACs) free of whitespace and
   control characters, owned prefixes for sets and jump targets, numbers in their kernel ranges,
   sysctl keys.

The files are read once, here, and kept: the agent applies exactly the bytes it verified, even
if the bundle directory changes while it runs (a push copying the next bundle); a role's bytes
are its source's (`Bundle.data`). Every message names the file and the field; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.bundle_checks import (
    check_cluster_index,
    check_manifest,
    check_node_file,
    cluster_file_of,
    problems_error,
    unlisted_sources,
)
from calicc.agent.bundle_files import (
    cluster_base,
    file_digest,
    read_files,
    read_one,
    where_missing,
)
from calicc.agent.bundle_json import earlier_layout, parse_model
from calicc.agent.files import ReadProblem, is_inside, read_bounded
from calicc.contract.assemble import AssemblyError, assemble, built_from_problems
from calicc.contract.manifest import (
    ClusterIndex,
    ClusterPolicy,
    ClusterSettings,
    NodeFile,
    NodeManifest,
)
from calicc.contract.names import (
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    MANIFEST,
    NODES_TABLE,
)
from calicc.contract.nodes_table import NodesTableError, parse_table

__all__ = ["Bundle", "file_digest", "installed_node", "load_bundle"]

# Within a 256 MB address space: a 4 MiB node.json of tiny objects peaks at ~175 MB RSS while
# validated; a node's own node.json stays small however many nodes the cluster has.
MAX_MANIFEST_BYTES = 4 * 2**20


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its directory, assembled manifest, digest and verified bytes.

    `digest` identifies the whole bundle: it covers node.json and cluster/index.json, which
    list every other file's digest, so it changes when any file does (a node joining changes
    only the cluster part: the agent must see a new bundle, not drift).

    `contents` holds every listed file once, under its own path: the node's, and the cluster
    part's (cluster/index.json included, role sources among them) under `cluster/...`. A role
    (e.g. "iptables/iptables.rules") is no key of it: `data`, `text` and `has` resolve a role
    to its source.
    """

    directory: Path
    manifest: NodeManifest
    digest: str
    raw: bytes
    contents: Mapping[str, bytes]

    def path_of(self, rel: str) -> str:
        """Return the file holding listed file or role `rel`: a role's source, else `rel`."""
        entry = self.manifest.files.get(rel)
        return entry.source if entry is not None and entry.source is not None else rel

    def data(self, rel: str) -> bytes:
        """Return the verified bytes of a listed file or role (read once, by load_bundle)."""
        return self.contents[self.path_of(rel)]

    def text(self, rel: str) -> str:
        """Return the text of a listed file or role (digest already verified)."""
        return self.data(rel).decode("utf-8")

    def has(self, rel: str) -> bool:
        """Return whether the manifest lists file or role `rel`."""
        return rel in self.manifest.files

    def tree(self) -> dict[str, bytes]:
        """Return the bundle as one self-contained tree (relative path -> bytes).

        node.json, the node's files, and the cluster part (cluster/index.json and the files it
        lists, role sources among them) under `cluster/`: what the agent installs for the CNI
        plugin, and a bundle `load_bundle` reads by itself. Roles are not written twice: node.json
        names their sources.
        """
        return {**self.contents, MANIFEST: self.raw}


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


def _refuse(directory: Path, problems: list[str]) -> None:
    if problems:
        raise problems_error(directory, problems)


def _cluster_index(directory: Path, node_file: NodeFile) -> tuple[ClusterIndex, bytes]:
    """Return cluster/index.json, checked, and its bytes (node.json is valid by now)."""
    base = cluster_base(directory)
    path = base / CLUSTER_INDEX
    try:
        raw = read_one(base, CLUSTER_INDEX, where_missing(directory, base))
    except ReadProblem as exc:
        raise AgentError(f"{exc} (the cluster part's index)") from exc
    index = parse_model(path, raw, ClusterIndex, "cluster index")
    _refuse(directory, [f"{path}: {p}" for p in check_cluster_index(index, node_file)])
    node_json = directory / MANIFEST
    built = built_from_problems(node_file, index) + unlisted_sources(node_file, index)
    _refuse(directory, [f"{node_json}: {p}" for p in built])
    return index, raw


def _assembled(
    directory: Path, node_file: NodeFile, index: ClusterIndex, contents: Mapping[str, bytes]
) -> NodeManifest:
    """Return the node's manifest from node.json and the cluster files (all digests verified)."""
    base = cluster_base(directory)
    settings = parse_model(
        base / CLUSTER_SETTINGS, contents[CLUSTER_SETTINGS], ClusterSettings, "cluster settings"
    )
    policy = parse_model(
        base / CLUSTER_POLICY, contents[CLUSTER_POLICY], ClusterPolicy, "cluster policy"
    )
    try:
        rows = parse_table(contents[NODES_TABLE].decode("utf-8"))
    except NodesTableError as exc:
        raise AgentError(f"{base / NODES_TABLE}: {exc}") from exc
    try:
        return assemble(node_file, index, settings, policy, rows)
    except AssemblyError as exc:
        raise AgentError(f"{directory / MANIFEST}: {exc}") from exc


def _check_assembled(directory: Path, manifest: NodeManifest, node: str | None) -> None:
    """Raise naming every problem of the assembled manifest, each in the file holding it."""
    base = cluster_base(directory)
    problems = []
    for problem in check_manifest(manifest, node):
        cluster_file = cluster_file_of(problem)
        where = base / cluster_file if cluster_file else directory / MANIFEST
        problems.append(f"{where}: {problem}")
    _refuse(directory, problems)


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
    node_file = parse_model(path, raw, NodeFile, "manifest", earlier_layout)
    _refuse(directory, [f"{path}: {p}" for p in check_node_file(node_file, node)])
    index, index_raw = _cluster_index(directory, node_file)
    contents = read_files(directory, {**index.files, **node_file.files})
    manifest = _assembled(directory, node_file, index, contents)
    _check_assembled(directory, manifest, node)
    contents[CLUSTER_INDEX] = index_raw
    return Bundle(directory, manifest, bundle_digest(raw, index_raw), raw, contents)


def bundle_digest(node_json: bytes, cluster_index: bytes) -> str:
    """Return the digest of a whole bundle, from node.json's and cluster/index.json's bytes."""
    return file_digest(
        file_digest(node_json).encode() + b"\n" + file_digest(cluster_index).encode()
    )


def installed_node(copy: Path) -> str | None:
    """Return the node name of an installed bundle copy, or None when there is none readable."""
    try:
        data = json.loads(read_bounded(copy / MANIFEST, MAX_MANIFEST_BYTES))
        name = data["node"]["name"]
    except (ReadProblem, ValueError, KeyError, TypeError, RecursionError):
        return None
    return name if isinstance(name, str) else None
