"""The node agent in a lab: killed with SIGKILL and restarted, it repairs a deleted route.

`calicc agent --interval 1` runs in a node's namespace with the node's --root, as the lab's
`calicc apply` did. The route is the node's blackhole for its own block, which the agent owns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from calicc.lab.agent import calicc_exe, node_root
from calicc.lab.check import lab_context
from calicc.lab.netns import ns_run
from calicc.lab.procs import alive
from calicc.lab.state import LabState
from calicc.lab.wait import poll
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]
WAIT_S = 20.0


def blackhole(ns: str, block: str) -> bool:
    routes = json.loads(ns_run(ns, ["ip", "-j", "route", "show", block]).stdout or "[]")
    return any(r.get("type") == "blackhole" and r.get("dst") == block for r in routes)


@contextmanager
def agent(state: LabState, node: str, ns: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run `calicc agent --interval 1` for `node` in `ns`; stop it by PID after."""
    bundle = Path(state.root) / "rendered" / "nodes" / node
    root = node_root(Path(state.root), node)
    args = [calicc_exe(), "agent", "--bundle", str(bundle), "--root", str(root)]
    args += ["--interval", "1"]
    if state.tunnel == "ifb":
        args.append("--allow-tunnel-standin")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=WAIT_S)


def test_killed_agent_restarted_repairs_deleted_route() -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "ping")
    with running_lab(EXAMPLES / "offcluster-rr" / "cluster.yaml") as state:
        plan, topo = lab_context(state)
        node = plan.nodes[0]
        ns = topo.node(node.name).ns
        block = str(node.blocks[0].cidr)
        assert blackhole(ns, block)
        with agent(state, node.name, ns) as first:
            ns_run(ns, ["ip", "route", "del", "blackhole", block])
            poll(lambda: blackhole(ns, block), WAIT_S, "the running agent to repair the route")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=WAIT_S)
            assert not alive(first.pid)
        ns_run(ns, ["ip", "route", "del", "blackhole", block])
        assert not blackhole(ns, block)
        with agent(state, node.name, ns) as second:
            poll(lambda: blackhole(ns, block), WAIT_S, "the restarted agent to repair the route")
            assert second.poll() is None
