"""`calicc lab down` after a crash: no state file, yet every namespace and daemon goes."""

from __future__ import annotations

import pytest

from calicc.lab.down import lab_down
from calicc.lab.network import lab_namespaces
from calicc.lab.procs import alive
from calicc.lab.state import STATE_FILE
from calicc.lab.up import lab_up
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import short_base

pytestmark = [pytest.mark.root, pytest.mark.tools]


def test_down_without_state_finds_namespaces_and_processes() -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    with short_base() as base:
        root = base / "ecrash"
        try:
            state = lab_up(EXAMPLES / "offcluster-rr" / "cluster.yaml", "ecrash", root, print)
            pids = [p.pid for p in state.procs.values()]
            assert len(pids) == 4
            (root / STATE_FILE).unlink()  # as if `up` died before recording anything
            done = lab_down("ecrash", root)
        finally:
            lab_down("ecrash", root)
        assert sum(line.startswith("stopped pid") for line in done) >= 4
        assert not any(alive(pid) for pid in pids)
        assert lab_namespaces("ecrash") == []
