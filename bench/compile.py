"""Compile speed: full build and no-op rebuild at 100 (mesh), 1,000 and 5,000 nodes (reflectors).

Prints seconds, nodes/s, the no-op rebuild as a ratio of the full build in the same run, the
5,000-node build as a ratio of the 5 s aim, and how many node directories change when one node
is added (every node's ipsets list node addresses, so every directory changes; the
bird.conf column counts the BGP changes: the new node and the reflectors).
Run: .venv/bin/python bench/compile.py [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import build, load_cluster

AIM_SECONDS = 5.0


def cluster(nodes: int, reflectors: int) -> dict[str, Any]:
    entries = []
    for i in range(nodes):
        node: dict[str, Any] = {
            "name": f"node-{i:05d}",
            "address": f"10.{64 + i // 16000}.{(i // 250) % 64}.{i % 250 + 2}/18",
            "labels": {"rack": f"r{i // 40}"},
        }
        if i < reflectors:
            node["route_reflector_cluster_id"] = "1.0.0.1"
        entries.append(node)
    return {
        "name": "bench",
        "network_cidr": "10.128.0.0/9",
        "ipip_mode": "Always",
        "nodes": entries,
    }


def timed_build(path: Path, out: Path) -> tuple[float, int]:
    start = time.perf_counter()
    report = build(load_cluster(path), out)
    return time.perf_counter() - start, len(report.written)


def changed_node_dirs(written: list[str], suffix: str = "") -> int:
    return len({w.split("/")[1] for w in written if w.startswith("nodes/") and w.endswith(suffix)})


def run(nodes: int, reflectors: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="calicc-bench-") as tmp:
        path = Path(tmp) / "cluster.yaml"
        data = cluster(nodes, reflectors)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        out = Path(tmp) / "rendered"
        full, _ = timed_build(path, out)
        noop, noop_written = timed_build(path, out)
        data["nodes"].append({"name": "zz-new", "address": "10.64.0.253/18"})
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        report = build(load_cluster(path), out)
        return {
            "full": full,
            "noop": noop,
            "noop_written": noop_written,
            "added_dirs": changed_node_dirs(report.written),
            "added_bird": changed_node_dirs(report.written, "bird.conf"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,5000")
    args = parser.parse_args()
    print(
        f"{'topology':<22} {'full s':>8} {'nodes/s':>9} {'no-op s':>8} {'no-op/full':>10} "
        f"{'written':>8} {'+1 node: dirs':>14} {'bird.conf':>10}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        reflectors = 0 if size <= 100 else 3
        r = run(size, reflectors)
        name = f"{size} {'mesh' if not reflectors else '3 reflectors'}"
        print(
            f"{name:<22} {r['full']:>8.2f} {size / r['full']:>9.0f} {r['noop']:>8.2f} "
            f"{r['noop'] / r['full']:>10.2f} {r['noop_written']:>8.0f} {r['added_dirs']:>14.0f} "
            f"{r['added_bird']:>10.0f}"
        )
        if size == 5000:
            print(f"5,000-node build / {AIM_SECONDS:.0f} s aim: {r['full'] / AIM_SECONDS:.2f}")


if __name__ == "__main__":
    main()
