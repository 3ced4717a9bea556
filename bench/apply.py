"""Benchmark of `calicc apply` on a node with 100 policies and 110 pods (root only).

Runs inside a throwaway namespace (calicc-bench-<pid>, removed at the end). The 110 pods are
endpoint records as the CNI plugin writes them (each selected by 10 policies, 11 of them in a
selector ipset), so the agent merges 220 endpoint chains into the node's rules. Measured: a full
apply; the no-op reconcile of a running agent (same Reconciler: memo warm, drift watch on) and,
side by side, the same no-op forced to read iptables and ipsets in full every time (what the
agent did before the nftables generation check); a one-policy change. Then the same node with
a Kubernetes API (the stub of tests/support/kubeapi.py, in the namespace) listing the 110 pods,
watched as the running agent watches it: its no-op reconcile, and the reconcile after one pod is
relabelled into another policy group, which must restore only that pod's chain and add it to
one set (the writes are printed). Prints the times, the commands each run, and the ratios
against the full apply measured in the same run.
Usage: sudo .venv/bin/python bench/apply.py
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

from calicc.agent.apply import Options, Reconciler
from calicc.agent.bundle import load_bundle
from calicc.agent.drift import Watch
from tests.support.bundles import derive_bundle, rendered
from tests.support.kubeapi import KubeApi

POLICIES = 100
PODS = 110
GROUPS = 10  # pod i has label app=a<i % 10>; policy i selects app=a<i % 10>
NOOPS = 30
RELABELLED = 5  # pod 5 (app=a5) is relabelled app=a0


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


def pod_address(i: int) -> str:
    """Return pod i's address (blocks 10.244.0.0/26 and 10.244.0.64/26, tunnel address skipped)."""
    return f"10.244.0.{i + 1}"


def bundle(directory: Path, change: int | None = None) -> None:
    """Write the benchmark bundle (110 pod addresses in one set, 100 policy chains)."""
    pods = [pod_address(i) for i in range(PODS)]
    sets = [
        {"name": "cali40pods", "type": "hash:ip", "members": pods},
        {
            "name": "cali40s:bench-a0",
            "type": "hash:ip",
            "selector": {"namespace": "bench", "podSelector": {"matchLabels": {"app": "a0"}}},
        },
    ]
    jumps = [{"table": "filter", "chain": "FORWARD", "rule": "-j cali-FORWARD"}]
    policies = [
        {
            "namespace": "bench",
            "name": f"p{i:03d}",
            "pod_selector": {"matchLabels": {"app": f"a{i % GROUPS}"}},
            "ingress_chain": f"cali-pi-p{i:03d}",
        }
        for i in range(POLICIES)
    ]
    base = rendered("minikube-ipip", "minikube")
    bird = {**json.loads((base / "node.json").read_text())["bird"], "enabled": False}
    derive_bundle(
        base,
        directory,
        iptables=rules(change),
        policy={"ipsets": sets, "policies": policies},
        settings={"jump_rules": jumps},
        bird=bird,
    )


def endpoint_records(root: Path) -> None:
    """Write the 110 pods' endpoint records where the CNI plugin keeps them."""
    directory = root / "var/lib/calicc/endpoints"
    directory.mkdir(parents=True)
    for i in range(PODS):
        iface = f"calibench{i:06d}"
        record = {
            "iface": iface,
            "container_id": f"c{i}",
            "ifname": "eth0",
            "address": pod_address(i),
            "namespace": "bench",
            "labels": {"app": f"a{i % GROUPS}"},
            "namespace_labels": {},
            "members": [],
        }
        (directory / f"{iface}.json").write_text(json.dumps(record))


def timed(rec: Reconciler, directory: Path) -> tuple[float, int, list[str]]:
    """Run one reconcile; return seconds, commands run, and the writes."""
    before_r, before_w = len(rec.runner.reads), len(rec.runner.writes)
    start = time.perf_counter()
    result = rec.reconcile(load_bundle(directory))
    seconds = time.perf_counter() - start
    assert result.ok, result.errors
    writes = [" ".join(c[:2]) for c in rec.runner.writes[before_w:]]
    writes += result.changes.get("iptables", []) + result.changes.get("ipsets", [])
    return seconds, len(rec.runner.reads) - before_r + len(rec.runner.writes) - before_w, writes


def noops(rec: Reconciler, directory: Path) -> list[float | int | list[str]]:
    """Run NOOPS no-op reconciles; return the median, the max, and the commands of all of them."""
    runs = [timed(rec, directory) for _ in range(NOOPS)]
    med = statistics.median(s for s, _, _ in runs)
    return [med, max(s for s, _, _ in runs), sum(c for _, c, _ in runs), []]


def inner() -> None:
    """Measure inside the namespace."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle(work / "b")
        endpoint_records(work / "root")
        rec = Reconciler(Options(root=work / "root", allow_tunnel_standin=True))
        full, full_cmds, full_w = timed(rec, work / "b")
        timed(rec, work / "b")  # the check after the agent's own write reads in full
        watched = noops(rec, work / "b")
        rec.watch = Watch(enabled=False)
        unwatched = noops(rec, work / "b")
        bundle(work / "c", change=42)
        change, change_cmds, change_w = timed(rec, work / "c")
        with KubeApi() as api:
            api_noop, relabel = with_api(api, work)
        print(
            json.dumps(
                {
                    "full": [full, full, full_cmds, full_w],
                    "noop": watched,
                    "noop, full reads": unwatched,
                    "change": [change, change, change_cmds, change_w],
                    "noop, API watched": api_noop,
                    "relabel": relabel,
                }
            )
        )


def with_api(api: KubeApi, work: Path) -> tuple[list[float | int | list[str]], list[object]]:
    """Serve the pods from a stub API, reconcile with it watched; then relabel one pod."""
    api.put_namespace("bench")
    for i in range(PODS):
        api.put_pod("bench", f"pod-{i}", {"app": f"a{i % GROUPS}"}, pod_address(i), "minikube")
    api.start()
    options = Options(
        root=work / "root", allow_tunnel_standin=True, kubeconfig=api.kubeconfig(work / "k")
    )
    rec = Reconciler(options)
    rec.remote.watch = True
    timed(rec, work / "c")  # a new agent's first reconcile reads everything
    timed(rec, work / "c")
    noop = noops(rec, work / "c")
    informer = (
        rec.remote.kube.informers[0] if rec.remote.kube and rec.remote.kube.informers else None
    )
    assert informer is not None
    seen = informer.revision
    api.label_pod("bench", f"pod-{RELABELLED}", {"app": "a0"})  # into the group of set a0
    while informer.revision == seen:
        time.sleep(0.001)
    seconds, cmds, writes = timed(rec, work / "c")
    rec.remote.stop()
    return noop, [seconds, seconds, cmds, writes]


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
    print(f"no-op rows: median (max) of {NOOPS} reconciles, commands summed over all of them")
    for name, (seconds, worst, cmds, writes) in data.items():
        print(
            f"{name:>16}: {seconds * 1000:7.1f} ms ({worst * 1000:6.1f})  x{seconds / full:5.2f}"
            f" of full  commands {cmds:3d}  writes {writes[:3]}{' ...' if len(writes) > 3 else ''}"
        )
    ratio = data["noop"][0] / data["noop, full reads"][0]
    print(f"no-op with drift watch / no-op with full reads: x{ratio:.2f}")
    relabel = data["relabel"][3]
    print(f"relabel of pod {RELABELLED}: {len(relabel)} writes: {relabel}")


if __name__ == "__main__":
    inner() if "--inner" in sys.argv else main()
