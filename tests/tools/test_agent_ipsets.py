"""The agent's netlink ipset reader agrees with `ipset save` (policies-demo's sets with runtime
members: hash:net with /31 and /32, hash:ip, hash:ip,port), and sees reference counts."""

from __future__ import annotations

import json
import sys

import pytest

from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, rendered

pytestmark = [pytest.mark.root, pytest.mark.tools]
DEMO = rendered("policies-demo", "node-1")
RUNTIME = """add cali40s:Y0wk1bBX7T49x15BqTQ05r8 10.244.0.5
add cali40n:pfSn7gpvTdXhnz9puJpFlfW 10.244.0.6,tcp:8080
add cali40n:pfSn7gpvTdXhnz9puJpFlfW 10.244.0.6,udp:53
add cali40all-hosts-net 10.30.0.12/31
add cali40all-hosts-net 10.30.9.9
"""
COMPARE = """
import json
from calicc.agent.ipsets import dump_sets, parse_save
from calicc.agent.runner import Runner
dump = dump_sets()
saved = parse_save(Runner().run(["ipset", "save"]))
print(json.dumps({"same": dump.sets == saved, "n": len(saved), "refs": dump.references}))
"""


def test_netlink_dump_equals_ipset_save(make_ns: MakeNs) -> None:
    need_tool("ipset", "iptables")
    ns = make_ns("sets")
    compiled = (DEMO.parents[1] / "cluster/ipsets.restore").read_text()
    ns_run(ns, ["ipset", "restore"], input_text=compiled)
    ns_run(ns, ["ipset", "-exist", "restore"], input_text=RUNTIME)
    ns_run(ns, ["ipset", "create", "KUBE-X", "hash:ip"])  # not ours: left out of both
    rule = ["-m", "set", "--match-set", "cali40all-hosts-net", "src", "-j", "ACCEPT"]
    ns_run(ns, ["iptables", "-A", "INPUT", *rule])
    done = ns_run(ns, [sys.executable, "-c", COMPARE], check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["same"]
    lines = [line.split() for line in compiled.splitlines()]
    created = {words[1] for words in lines if words[:1] == ["create"]}
    created -= {words[1] for words in lines if words[:1] == ["destroy"]}  # swapped-in temps
    assert result["n"] == len(created)
    assert result["refs"]["cali40all-hosts-net"] == 1
    assert result["refs"]["cali40all-ipam-pools"] == 0
