"""Bench: size and iptables-restore time of a node's ruleset at 10, 100 and 1,000 policies.

For each size: rule lines, the time of a whole `iptables-restore --noflush` of the node's file,
and the time of restoring only the chain of one changed policy, printed as a ratio to the whole
restore in the same run (same namespace, same machine state). It also checks that changing one
policy changes exactly one chain of the output.

Run as root: `.venv/bin/python bench/iptables.py`. Everything happens in a scratch namespace
(calicc-bench-<pid>) that is deleted at the end, also on failure.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.lab.netns import ns_add, ns_delete, ns_run

SIZES = (10, 100, 1000)
REPEAT = 5
CLUSTER = """name: bench
network_cidr: 10.244.0.0/16
nodes:
  - {name: n1, address: 10.30.0.1/24}
policies: [policies/*.yaml]
"""


def policy(i: int, port: int) -> str:
    return f"""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p{i:04d}, namespace: ns{i % 7}}}
spec:
  podSelector: {{matchLabels: {{app: a{i}}}}}
  ingress:
    - from:
        - podSelector: {{matchLabels: {{role: r{i % 13}}}}}
        - ipBlock: {{cidr: 172.16.0.0/12, except: [172.16.{i % 250}.0/24]}}
      ports: [{{port: {port}}}, {{protocol: UDP, port: 5000, endPort: 5100}}]
  egress:
    - to: [{{namespaceSelector: {{matchLabels: {{team: t{i % 5}}}}}}}]
"""


def render(base: Path, count: int, changed_port: int) -> tuple[str, str]:
    (base / "policies").mkdir(parents=True, exist_ok=True)
    text = "".join(policy(i, changed_port if i == 0 else 80) for i in range(count))
    (base / "policies" / "all.yaml").write_text(text)
    (base / "cluster.yaml").write_text(CLUSTER)
    files = compile_cluster(load_cluster(base / "cluster.yaml")).files
    return files["cluster/ipsets.restore"], files["nodes/n1/iptables/iptables.rules"]


def chains(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(":"):
            out.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            out[line.split()[1]].append(line)
    return out


def timed_restore(ns: str, text: str) -> float:
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        ns_run(ns, ["iptables-restore", "--noflush"], input_text=text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_size(ns: str, count: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        ipsets, whole = render(Path(tmp), count, 80)
        _, changed = render(Path(tmp), count, 8080)
    before, after = chains(whole), chains(changed)
    diff = [c for c in before if before[c] != after.get(c)]
    if len(diff) != 1 or before.keys() != after.keys():
        raise SystemExit(f"one policy change must change one chain; changed: {diff}")
    one = "\n".join(["*filter", f":{diff[0]} - [0:0]", *after[diff[0]], "COMMIT", ""])
    ns_run(ns, ["ipset", "restore"], input_text=ipsets)
    whole_s = timed_restore(ns, whole)
    one_s = timed_restore(ns, one)
    lines = sum(1 for x in whole.splitlines() if x.startswith("-A "))
    return (
        f"{count:>5} policies  {lines:>6} rule lines  whole {whole_s * 1000:8.1f} ms  "
        f"one chain ({diff[0]}) {one_s * 1000:6.1f} ms  ratio {one_s / whole_s:.3f}"
    )


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench restores into a scratch network namespace")
    backend = subprocess.run(
        ["iptables", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ns = f"calicc-bench-{os.getpid()}"
    ns_add(ns)
    try:
        print(f"{backend}; median of {REPEAT}; one changed policy restored alone vs whole file")
        for count in SIZES:
            print(bench_size(ns, count))
    finally:
        ns_delete(ns)


if __name__ == "__main__":
    main()
