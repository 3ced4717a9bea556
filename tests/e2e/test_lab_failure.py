"""A node whose `calicc apply` fails: `lab up` names it, the other nodes still run, and
`lab down` removes everything (namespaces, every BIRD the other nodes started, files)."""

from __future__ import annotations

import pytest

from calicc.lab import up
from calicc.lab.down import lab_down
from calicc.lab.network import lab_namespaces
from calicc.lab.procs import alive
from calicc.lab.state import load_state
from calicc.lab.topology import Topology
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import short_base

pytestmark = [pytest.mark.root, pytest.mark.tools]


def test_failed_node_is_named_and_the_lab_comes_down(monkeypatch: pytest.MonkeyPatch) -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    wire = up.create_topology
    with short_base() as base:
        root = base / "efail"

        def wire_then_break_node_2(topo: Topology) -> None:
            wire(topo)  # after the build: node-2's bundle no longer parses
            (root / "rendered" / "nodes" / "node-2" / "node.json").write_text("{")

        monkeypatch.setattr(up, "create_topology", wire_then_break_node_2)
        try:
            with pytest.raises(up.LabError) as caught:
                up.lab_up(EXAMPLES / "offcluster-rr" / "cluster.yaml", "efail", root, print)
            state = load_state(root)
        finally:
            done = lab_down("efail", root)
    text = str(caught.value)
    assert "calicc apply failed on 1 of 3 nodes:" in text
    assert "node-2 (calicc-efail.node-node-2): exit 1" in text
    assert "node-1 (" not in text
    assert "run `calicc lab down" in text
    assert state is not None
    birds = {k: p.pid for k, p in state.procs.items() if k.startswith("bird:")}
    assert sorted(birds) == ["bird:node-1", "bird:node-3"]  # the others applied and started
    assert not any(alive(p.pid) for p in state.procs.values())  # BIRDs and gobgpd
    assert "deleted namespace calicc-efail.router" in done
    assert lab_namespaces("efail") == []
    assert not root.exists()
