"""A running lab changed in place: a node added to the cluster file, rebuilt and re-applied.

The new node gets BGP sessions, routes and pods; every other node's existing BGP sessions keep
their BIRD "since" timestamps (reconfigured, not restarted); the whole matrix still passes.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import pytest
import yaml

from calicc.lab.bird import birdc, parse_protocols
from calicc.lab.check import lab_check
from calicc.lab.reapply import lab_apply
from calicc.lab.state import LabState
from calicc.lab.verify import FAIL, PASS
from tests.conftest import need_root, need_tool
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]


def sessions_since(state: LabState) -> dict[tuple[str, str], tuple[time, str]]:
    """Return {(node, protocol): (since, info)} of every node BIRD's BGP sessions."""
    since = {}
    for key, proc in state.procs.items():
        if key.startswith("bird:"):
            protocols = parse_protocols(birdc(Path(proc.match), "show", "protocols"))
            for name, p in protocols.items():
                if p["proto"] == "BGP":
                    since[(key[5:], name)] = (time.fromisoformat(p["since"]), p["info"])
    return since


def test_node_added_converges_without_restarting_sessions(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc", "ping")
    cluster = tmp_path / "cluster.yaml"
    data = {
        "name": "grow",
        "network_cidr": "10.244.0.0/16",
        "ipip_mode": "Never",
        "bgp": {"as_number": 64512, "node_to_node_mesh": True},
        "nodes": [
            {"name": "rack1-node1", "address": "10.60.1.11/24"},
            {"name": "rack1-node2", "address": "10.60.1.12/24"},
        ],
    }
    cluster.write_text(yaml.safe_dump(data, sort_keys=False))
    with running_lab(cluster) as state:
        before = sessions_since(state)
        assert len(before) == 2
        data["nodes"].append({"name": "rack1-node3", "address": "10.60.1.13/24"})
        cluster.write_text(yaml.safe_dump(data, sort_keys=False))
        change_started = datetime.now().time()
        lab_apply(state, lambda _line: None)
        after = sessions_since(state)
        # BIRD's "since" is the last state change: an untouched session has none since the
        # change began (a restarted one would be re-established after that moment).
        for key in before:
            assert after[key][1].startswith("Established"), key
            assert after[key][0] < change_started, f"{key} restarted at {after[key][0]}"
        assert len(after) == 6
        assert {p.node for p in state.pods.values()} >= {"rack1-node3"}
        rows = lab_check(state, policy=False)
        assert [r for r in rows if r.status == FAIL] == []
        assert any(
            r.check == "pod-pod nodes" and "rack1-node3" in r.subject and r.status == PASS
            for r in rows
        )
