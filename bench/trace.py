"""Benchmark of `calicc trace` against issue 14's aims, on a 1,000-node cluster.

The cluster: 1,000 nodes with three in-cluster route reflectors, IPIP CrossSubnet in racks of
250 (bench/compile.py's `cluster`), 100 NetworkPolicies in 20 namespaces (each selects one app,
allows ingress from another app on a named port or a number, some from an ipBlock), and a
pods file of 2,000 pods (two per node, 50 apps, a named port `http` 8080). Built once with
`calicc build` in a temporary directory. Printed, each with its ratio to the aim:
- one query: first in-process with the pods file never read before (its YAML parsed and
  checked, then cached: trace/pods.py); then `calicc trace SRC DST --port 8080/TCP` as a user
  runs it (a new process: interpreter, imports, tree), first with no node read before (each
  loaded with the agent's loader, then kept: trace/node_cache.py), then median of 7 more
  (nodes and pods file from the cache); and the same query in-process from a cold start (new
  tree view and tracer: every bundle loaded again, the pods file from the cache), median of 7;
- the all-pairs matrix of 100 pods on one port (9,900 ordered pairs of distinct pods) through
  one tracer in-process, as `calicc diff` and `calicc lab check` need it.
Run: .venv/bin/python bench/trace.py [--nodes N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import compile as compile_bench  # bench/compile.py: the cluster generator

from calicc.trace.answer import Port, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView

CALICC = str(Path(sys.executable).with_name("calicc"))
AIMS = {"query": 0.3, "matrix": 5.0}
NAMESPACES, APPS, POLICIES, PODS_PER_NODE, MATRIX = 20, 50, 100, 2, 100


def policies() -> list[dict[str, Any]]:
    """Return 100 NetworkPolicies: each selects one app, allows ingress from another."""
    found = []
    for i in range(POLICIES):
        port: dict[str, Any] = {"port": "http"} if i % 2 else {"port": 8080, "protocol": "TCP"}
        peer: dict[str, Any] = {"podSelector": {"matchLabels": {"app": f"app-{(i + 20) % APPS}"}}}
        if i % 10 == 5:  # the matrix's pods (every 20th) stay under pod-selector policies
            peer = {"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{i}.0.0/16"]}}
        found.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"allow-{i}", "namespace": f"ns-{i % NAMESPACES}"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": f"app-{i % APPS}"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [peer], "ports": [port]}],
                },
            }
        )
    return found


def pods(nodes: list[str]) -> dict[str, Any]:
    """Return a pods file of PODS_PER_NODE pods on every node."""
    entries = []
    for n, node in enumerate(nodes):
        for k in range(PODS_PER_NODE):
            i = n * PODS_PER_NODE + k
            entries.append(
                {
                    "name": f"pod-{i:05d}",
                    "namespace": f"ns-{i % NAMESPACES}",
                    "node": node,
                    "labels": {"app": f"app-{i % APPS}"},
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            )
    return {"pods": entries}


def setup(work: Path, nodes: int) -> tuple[Path, Path, list[str]]:
    """Write and build the cluster; return the tree, the pods file and the pod keys."""
    data = compile_bench.cluster(nodes, "rr")
    data["policies"] = ["policies.yaml"]
    (work / "policies.yaml").write_text(yaml.safe_dump_all(policies()))
    (work / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run([CALICC, "build", str(work / "cluster.yaml")], check=True, capture_output=True)
    # (an unchanged cluster in a kept --work directory is a no-op build)
    body = pods([n["name"] for n in data["nodes"]])
    (work / "pods.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    keys = [f"{p['namespace']}/{p['name']}" for p in body["pods"]]
    return work / "rendered", work / "pods.yaml", keys


def query_cli(tree: Path, pods_file: Path, src: str, dst: str) -> float:
    args = [CALICC, "trace", src, dst, "--port", "8080/TCP", "--tree", str(tree)]
    start = time.perf_counter()
    args += ["--pods", str(pods_file)]
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"calicc trace failed: {done.stderr}")
    return took


def query_cold(tree: Path, pods_file: Path, src: str, dst: str) -> float:
    start = time.perf_counter()
    view = TreeView.open(tree)
    cluster = Cluster(view, load_pods(pods_file, view.by_name))
    tracer = Tracer(cluster)
    tracer.trace(cluster.resolve(src, None), cluster.resolve(dst, None), Port("tcp", 8080))
    return time.perf_counter() - start


def matrix(tree: Path, pods_file: Path, keys: list[str]) -> tuple[float, int, int]:
    """Return the seconds, pairs and allowed pairs of the all-pairs matrix of `keys`."""
    start = time.perf_counter()
    view = TreeView.open(tree)
    cluster = Cluster(view, load_pods(pods_file, view.by_name))
    tracer = Tracer(cluster)
    ends = [cluster.resolve(k, None) for k in keys]
    port, allowed, pairs = Port("tcp", 8080), 0, 0
    for src in ends:
        for dst in ends:
            if src is not dst:
                pairs += 1
                allowed += tracer.trace(src, dst, port).allowed
    return time.perf_counter() - start, pairs, allowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--work", type=Path, help="build there and keep it (reused when built)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="calicc-bench-trace-") as tmp:
        work = options.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tree, pods_file, keys = setup(work, options.nodes)
        src, dst = keys[3], keys[len(keys) // 2 + 1]  # different racks: IPIP across
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # the pods file not read yet
        first = query_cold(tree, pods_file, src, dst)
        cli_first = query_cli(tree, pods_file, src, dst)
        cli = statistics.median(query_cli(tree, pods_file, src, dst) for _ in range(7))
        cold = statistics.median(query_cold(tree, pods_file, src, dst) for _ in range(7))
        step = len(keys) // MATRIX
        took, pairs, allowed = matrix(tree, pods_file, keys[::step][:MATRIX])
    print(f"{options.nodes} nodes, {POLICIES} policies, {len(keys)} pods")
    queries = (
        ("in-process, pods file not yet cached", first),
        ("calicc trace (new process), no node read before", cli_first),
        ("calicc trace (new process), nodes read before", cli),
        ("in-process, cold", cold),
    )
    for label, took_one in queries:
        ratio = took_one / AIMS["query"]
        print(f"one query, {label}: {took_one:.3f} s, x{ratio:.2f} of the aim")
    print(
        f"all pairs of {MATRIX} pods on TCP/8080 ({pairs} traces, {allowed} allowed): "
        f"{took:.2f} s, x{took / AIMS['matrix']:.2f} of the aim"
    )


if __name__ == "__main__":
    main()
