"""File-based source of remote endpoints, for nodes without a Kubernetes API (lab, other runtimes).

Layout, under the CNI plugin's state directory (`<root>/var/lib/calicc` unless the conflist's
`state_dir` says otherwise)::

    peers/<node>/endpoints/<iface>.json

`peers/<node>/endpoints/` is a copy of node `<node>`'s own `<state_dir>/endpoints/` directory:
the endpoint records its CNI plugin writes at ADD and removes at DEL
(agent/cni/endpoint_policy.py, `EndpointRecord` as JSON with the keys iface, container_id,
ifname, address, namespace, labels, namespace_labels and members). Whatever distributes them
(the lab, a DaemonSet, rsync, Ansible) mirrors every node's directory to every other node, e.g.
`rsync -a --delete <B-state>/endpoints/ <A-state>/peers/B/endpoints/` (rsync writes to a
temporary name, then renames; any other writer must do the same: only `*.json` is read, and a
file that does not parse yet is skipped until the next interval). A record that disappears takes
its pod out of the sets at the next interval.

The agent evaluates the records against its current node.json exactly like its own (pod
selectors again, named-port members as recorded), so a new policy's selector set also gets the
pods already running elsewhere. The node's own directory under peers/ is ignored: its pods come
from its CNI records.
"""

from __future__ import annotations

import os
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.cni.endpoint_policy import load_records
from calicc.agent.endpoints import Fingerprint, fingerprint, runtime_members
from calicc.contract.manifest import NodeManifest

PEERS = "peers"
PeersFingerprint = tuple[tuple[str, Fingerprint], ...]


def peer_nodes(state_dir: Path, own: str) -> list[Path]:
    """Return the peer directories (one per other node), sorted by node name."""
    try:
        entries = list(os.scandir(state_dir / PEERS))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_dir() and e.name != own)


def peers_fingerprint(state_dir: Path, own: str) -> PeersFingerprint:
    """Return (node, fingerprint of its records) per peer: changes whenever a record does."""
    return tuple((d.name, fingerprint(d)) for d in peer_nodes(state_dir, own))


def peer_members(state_dir: Path, manifest: NodeManifest) -> dict[str, frozenset[str]]:
    """Return the runtime sets' members contributed by the peers' endpoint records.

    Raises:
        AgentError: a peer's record is not an endpoint record (the file is named).
    """
    members: dict[str, set[str]] = {}
    for directory in peer_nodes(state_dir, manifest.node.name):
        try:
            records = load_records(directory)
        except (TypeError, KeyError, AttributeError) as exc:
            raise AgentError(
                f"{directory}/endpoints: a file is not an endpoint record ({exc}); copy the "
                "node's <state_dir>/endpoints/*.json there unchanged"
            ) from exc
        for name, found in runtime_members(records, manifest).items():
            members.setdefault(name, set()).update(found)
    return {name: frozenset(found) for name, found in sorted(members.items())}
