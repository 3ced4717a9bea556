"""Every example of examples/ brought up as a lab, checked, and taken down (root, real tools).

Nodes run the real agent (`calicc apply --root`), which starts BIRD; off-cluster reflectors run
gobgpd. This kernel has no ipip module: tunl0 is an ifb stand-in, so IPIP data-plane rows must
be reported as skipped and never as passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calicc.lab.check import lab_check, lab_context
from calicc.lab.verify import FAIL, PASS, SKIP
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import running_lab, short_base

pytestmark = [pytest.mark.root, pytest.mark.tools]

# large-rr (200 nodes) is proved by its own test below; the ICP example runs converted (below).
# Each example's check runs every row, the policy walkthrough included.
SMALL = sorted(
    p.name for p in EXAMPLES.iterdir() if (p / "cluster.yaml").exists() and p.name != "large-rr"
)


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp", "ping")


@pytest.mark.parametrize("example", SMALL)
def test_example_up_check_down(example: str) -> None:
    with running_lab(EXAMPLES / example / "cluster.yaml") as state:
        rows = lab_check(state)
        failing = [r for r in rows if r.status == FAIL]
        assert failing == []
        assert any(r.check == "bgp" and r.status == PASS for r in rows) or not state.procs
        ipip = [r for r in rows if r.check == "ipip-data"]
        assert all(r.status == SKIP for r in ipip)
        if state.tunnel == "ifb":
            assert ipip, "IPIP pairs exist but no skipped data-plane rows were reported"
        assert "routes_installed_s" in state.timings
        assert state.timings["first_pod_ping_s"] >= state.timings["routes_installed_s"]
        plan, _ = lab_context(state)
        own = [p for p in state.pods.values() if not p.kube_name]  # not the pods file's
        assert len(own) == 2 * len(plan.nodes)
        assert all(p.address for p in state.pods.values())
        agreement = [r for r in rows if r.check == "trace"]
        assert agreement[0].subject == "every pod pair and port"
        assert agreement[0].status == PASS, agreement  # same-node pairs at least, every example
        print(f"{example}: trace and packets: {agreement[0].observed}")
        kinds = {r.check for r in rows if r.status == PASS}
        assert {"pod-pod node", "node-pod", "pod-node", "mtu", "egress-nat", "policy"} <= kinds
        assert any(r.check.startswith("pod-pod node") and r.status == PASS for r in rows)
        if state.tunnel == "ifb":
            # every pod row over a tunl0 path is skipped, and skipped rows say why
            assert all("stand-in" in r.observed for r in rows if r.check == "ipip-data")


def test_cli_check_json_and_exit_status() -> None:
    with short_base() as tmp:
        _cli_round_trip(tmp)


def _cli_round_trip(tmp: Path) -> None:
    cluster = EXAMPLES / "offcluster-rr" / "cluster.yaml"
    calicc = str(Path(sys.executable).with_name("calicc"))
    base = ["--name", "eclijson", "--base", str(tmp)]
    up = subprocess.run(
        [calicc, "lab", "up", str(cluster), *base], capture_output=True, text=True, check=False
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "all routes installed" in up.stdout
        check = subprocess.run(
            [calicc, "lab", "check", str(cluster), *base, "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout
        rows = json.loads(check.stdout)
        gob = [r for r in rows if r["subject"].startswith("gobgpd")]
        assert len(gob) == 3
        assert all(r["observed"] == "Established" for r in gob)
    finally:
        down = subprocess.run(
            [calicc, "lab", "down", str(cluster), *base],
            capture_output=True,
            text=True,
            check=False,
        )
    assert "deleted namespace calicc-eclijson.router" in down.stdout
    again = subprocess.run(
        [calicc, "lab", "check", str(cluster), *base], capture_output=True, text=True, check=False
    )
    assert again.returncode == 1


def test_large_rr_up_check_down() -> None:
    """200 nodes behind 3 in-cluster reflectors: every session and route row, pods on 8 nodes
    spread over the racks (the kernel's shared neighbour table overflows with pods on all 200),
    the policy walkthrough on those 8 nodes (it applies no other node); unencapsulated
    cross-rack rows are skipped, not passed, since the lab router learns no pod routes here."""
    with running_lab(EXAMPLES / "large-rr" / "cluster.yaml", pod_nodes=8) as state:
        rows = lab_check(state)
        assert [r for r in rows if r.status == FAIL] == []
        walk = [r for r in rows if r.check == "policy"]
        assert len(walk) == 4 * 8  # ingress and egress per pod node, denied then allowed
        assert all(r.status == PASS for r in walk)
        assert sum(r.check == "bgp" and r.status == PASS for r in rows) >= 2 * 197 * 3 // 2
        assert len(state.pods) == 16
        across = [r for r in rows if r.check == "pod-pod subnets"]
        assert across
        assert all(r.status == SKIP for r in across)


def test_icp_example_through_convert(tmp_path: Path) -> None:
    """The ICP example (config.yaml + hosts) runs in the lab as the cluster.yaml that
    `calicc convert` writes, with its lock so blocks stay where the ICP build put them."""
    icp = EXAMPLES / "icp"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "calicc",
            "convert",
            "--icp",
            str(icp / "config.yaml"),
            "--hosts",
            str(icp / "hosts"),
            "-o",
            str(tmp_path / "cluster.yaml"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp_path / "cluster.lock.yaml").write_text((icp / "cluster.lock.yaml").read_text())
    with running_lab(tmp_path / "cluster.yaml") as state:
        rows = lab_check(state)
        assert [r for r in rows if r.status == FAIL] == []
        assert any(r.check == "bgp" and r.status == PASS for r in rows)
        assert any(r.check == "egress-nat" and r.status == PASS for r in rows)
