"""Benchmark of `calicc apply` on a node with 100 policies and 110 pods (root only).

Runs inside a throwaway namespace (calicc-bench-<pid>, removed at the end): a full apply, the
no-op reconcile of a running agent (same Reconciler, its memo warm), and a one-policy change.
Prints the times, the commands each run, and the ratios against the full apply measured in the
same run. Usage: sudo .venv/bin/python bench/apply.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.apply import Options, Reconciler
from agent.bundle import load_bundle
from tests.tools.agent_bundle import write_bundle

POLICIES = 100
PODS = 110


def rules(change: int | None = None) -> str:
    """Return iptables.rules with one chain per policy (policy `change` gets another port)."""
    lines = ["*filter", ":cali-FORWARD - [0:0]"]
    lines += [f":cali-pi-p{i:03d} - [0:0]" for i in range(POLICIES)]
    lines += [f"-A cali-FORWARD -j cali-pi-p{i:03d}" for i in range(POLICIES)]
    for i in range(POLICIES):
        port = 9000 if i == change else 8000 + i
        lines.append(
            f"-A cali-pi-p{i:03d} -p tcp --dport {port} -m set --match-set cali40pods src -j ACCEPT"
        )
    return "\n".join([*lines, "COMMIT", ""])


def bundle(directory: Path, change: int | None = None) -> None:
    """Write the benchmark bundle (110 pod addresses in one set, 100 policy chains)."""
    pods = [f"10.244.0.{i}" for i in range(1, 64)] + [f"10.244.0.{64 + i}" for i in range(47)]
    sets = [{"name": "cali40pods", "type": "hash:ip", "members": pods}]
    jumps = [{"table": "filter", "chain": "FORWARD", "rule": "-j cali-FORWARD"}]
    write_bundle(directory, iptables=rules(change), ipsets=sets, jump_rules=jumps)


def timed(rec: Reconciler, directory: Path) -> tuple[float, int, list[str]]:
    """Run one reconcile; return seconds, commands run, and the writes."""
    before_r, before_w = len(rec.runner.reads), len(rec.runner.writes)
    start = time.perf_counter()
    result = rec.reconcile(load_bundle(directory))
    seconds = time.perf_counter() - start
    assert result.ok, result.errors
    writes = [" ".join(c[:2]) for c in rec.runner.writes[before_w:]]
    writes += result.changes.get("iptables", [])
    return seconds, len(rec.runner.reads) - before_r + len(rec.runner.writes) - before_w, writes


def inner() -> None:
    """Measure inside the namespace."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle(work / "b")
        rec = Reconciler(Options(root=work / "root", allow_tunnel_standin=True))
        full, full_cmds, full_w = timed(rec, work / "b")
        noop = [timed(rec, work / "b") for _ in range(20)]
        bundle(work / "c", change=42)
        change, change_cmds, change_w = timed(rec, work / "c")
        med = statistics.median(s for s, _, _ in noop)
        print(
            json.dumps(
                {
                    "full": [full, full_cmds, full_w],
                    "noop": [med, noop[0][1], noop[0][2][:2]],
                    "change": [change, change_cmds, change_w],
                }
            )
        )


def main() -> None:
    """Create the namespace, run the measurement in it, print the report, clean up."""
    ns = f"calicc-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run = ["ip", "netns", "exec", ns]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(
            [*run, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0"], check=True
        )
        subprocess.run([*run, "ip", "addr", "add", "192.168.49.2/24", "dev", "eth0"], check=True)
        subprocess.run([*run, "ip", "link", "set", "eth0", "up"], check=True)
        subprocess.run([*run, "ip", "link", "add", "tunl0", "type", "ifb"], check=True)
        out = subprocess.run(
            [*run, sys.executable, __file__, "--inner"], check=True, capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    data = json.loads(out.splitlines()[-1])
    full = data["full"][0]
    print(f"node: {POLICIES} policies, {PODS} pods (namespace {ns}, removed)")
    for name in ("full", "noop", "change"):
        seconds, cmds, writes = data[name]
        print(
            f"{name:>7}: {seconds * 1000:8.1f} ms  x{seconds / full:5.2f} of full  "
            f"commands {cmds:3d}  writes {writes[:3]}{' ...' if len(writes) > 3 else ''}"
        )


if __name__ == "__main__":
    inner() if "--inner" in sys.argv else main()
