"""Reading a compiled tree as a node installs it: its own files, or the shared files it names."""

from __future__ import annotations

from calicc.contract.manifest import NodeFile
from calicc.contract.names import CLUSTER_DIR, MANIFEST, shared_path


def role_text(files: dict[str, str], node: str, role: str) -> str:
    """Return the text node `node` installs as `role` (bird.conf, iptables/iptables.rules...).

    Its own file (nodes/<node>/<role>), or else the cluster part's shared file that its
    node.json names for the role (FileEntry.source).
    """
    own = files.get(f"nodes/{node}/{role}")
    if own is not None:
        return own
    node_file = NodeFile.model_validate_json(files[f"nodes/{node}/{MANIFEST}"])
    source = node_file.files[role].source
    assert source is not None, f"{role} of {node}: node.json names no shared file"
    return files[source]


def shared_files(files: dict[str, str], role: str) -> dict[str, str]:
    """Return every shared file of `role` in the cluster part ({path: text}, one per kind)."""
    directory = shared_path(role, "").rsplit("/", 1)[0] + "/"
    assert directory.startswith(CLUSTER_DIR + "/")
    return {rel: text for rel, text in sorted(files.items()) if rel.startswith(directory)}
