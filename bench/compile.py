"""Compile speed and tree size through the CLI, against the aims of issue 11, in one run.

Topologies: 5,000 nodes with 3 route reflectors (IPIP CrossSubnet), 5,000 nodes VXLAN
CrossSubnet (both in racks of 250 nodes per /24), and a 100-node full mesh. For each, every
step is a `calicc build` process (as a user runs it):
  full      a fresh build (no lock, no tree)
  no-op     the same build again
  +1 node   a node added to the last rack: files rewritten, by kind
  -1 node   that node removed again: files rewritten and removed, by kind
  render    `calicc build --check` of a fresh tree: everything but writing (for comparison)
  write     a plain Python loop writing the same files again (the disk's part, nothing
            rendered): full is about render + write on this machine
Each timed build starts after os.sync(), and every tree is removed only when the run ends: on
this machine's ext4 (mounted with discard) removing a 70 MB tree slows file creation for
many seconds afterwards, which would be charged to the next topology's full build.
Printed: seconds and peak memory (the process's max RSS) of each step with its ratio to the
aim (full 3 s, no-op 0.3 s, 100-node mesh 0.5 s, memory 1 GB), the tree's size (bytes of the
files calicc wrote, and the file count) against the 100 MB aim, and which files a one-node
change touched: the node's own, reflectors' (bird.conf and the node.json listing it), other
nodes' (aim: none) and the cluster part's. `python3 -c pass` is timed beside as the floor.
Run: .venv/bin/python bench/compile.py [--sizes 5000] [--kinds rr,vxlan,mesh]

With --baseline REV the run compares instead: the same clusters compiled by this tree's calicc
and by REV's (exported with `git archive` into a temporary directory and run from it with the
same interpreter), alternating build by build so the host's drifting load falls on both alike.
Each round times a fresh build (no lock, no tree: the full compile and write) and a no-op
build of each, wall and CPU seconds (user + system, rendering workers included: steadier when
other work shares the machine); printed are the medians and current/baseline ratios (issue 13's
aim: an IPv4-only cluster compiles within 10% of before IPv6, i.e. ratios at most 1.10).
Run: .venv/bin/python bench/compile.py --baseline 8a59208 [--rounds 5] [--sizes 1000]

With --bgp-extras the run compares two clusters with this tree's calicc, alternating the same
way: the reflector cluster with a top-of-rack peer per rack of 250 nodes, and the same cluster
with 50 BGP filters (every kind of match and operation; each ToR session runs 12 of them and
2 global ones) and 20 named communities on 10 prefix advertisements (issue 15's aim: within
1.2x of the cluster without them).
Run: .venv/bin/python bench/compile.py --bgp-extras [--rounds 5] [--sizes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

CALICC = str(Path(sys.executable).with_name("calicc"))
AIMS = {"full": 3.0, "no-op": 0.3, "mesh": 0.5, "memory_mb": 1024.0, "tree_mb": 100.0}
RACK = 250  # nodes per /24


def cluster(nodes: int, kind: str) -> dict[str, Any]:
    """Return a cluster of `nodes` in racks of RACK per /24; kind rr, vxlan or mesh."""
    entries = []
    for i in range(nodes):
        node: dict[str, Any] = {
            "name": f"node-{i:05d}",
            "address": f"10.{64 + i // (RACK * 250)}.{(i // RACK) % 250}.{i % RACK + 2}/24",
            "labels": {"rack": f"r{i // RACK}"},
        }
        if kind == "rr" and i < 3:
            node["route_reflector_cluster_id"] = "1.0.0.1"
        entries.append(node)
    data: dict[str, Any] = {"name": "bench", "network_cidr": "10.128.0.0/9", "nodes": entries}
    if kind == "rr":
        data["ipip_mode"] = "CrossSubnet"
    elif kind == "vxlan":
        data |= {"ipip_mode": "Never", "vxlan_mode": "CrossSubnet"}
    return data


def with_tors(data: dict[str, Any]) -> dict[str, Any]:
    """Give every rack of `data`'s nodes an external (ToR) peer, eBGP, selected by rack label."""
    racks = sorted({n["labels"]["rack"] for n in data["nodes"]}, key=lambda r: int(r[1:]))
    peers = [
        {"peer_ip": f"10.{63}.{i}.254", "as_number": 65000 + i, "node_selector": f"rack == '{r}'"}
        for i, r in enumerate(racks)
    ]
    return data | {"bgp": {"peers": peers}}


def _rule(i: int, k: int) -> dict[str, Any]:
    """Return rule k of filter i: the kinds rotate over CIDR ranges, sources, communities..."""
    cidr = f"10.{128 + (i * 4 + k) % 120}.0.0/16"
    kinds: list[dict[str, Any]] = [
        {"action": "Reject", "cidr": cidr, "match_operator": "In", "prefix_length": {"min": 27}},
        {"action": "Accept", "cidr": cidr, "match_operator": "Equal", "source": "RemotePeers"},
        {
            "action": "Accept",
            "communities": {"values": [f"c{(i + k) % 20:02d}"]},
            "operations": [{"prepend_as_path": {"prefix": [64512, 64512]}}],
        },
        {
            "action": "Accept",
            "as_path_prefix": [65000 + k],
            "interface": "eth*",
            "operations": [
                {"add_community": {"value": f"65000:{i}"}},
                {"set_local_preference": {"value": 100 + k}},
            ],
        },
    ]
    return kinds[k % len(kinds)]


def with_extras(data: dict[str, Any], filters: int = 50, communities: int = 20) -> dict[str, Any]:
    """Add `filters` BGP filters and `communities` named communities to a with_tors cluster."""
    names = [f"c{j:02d}" for j in range(communities)]
    bgp = dict(data["bgp"])
    bgp["communities"] = [{"name": n, "value": f"65000:{j}"} for j, n in enumerate(names)]
    bgp["prefix_advertisements"] = [
        {"cidr": f"10.{128 + j}.0.0/16", "communities": [names[2 * j], names[2 * j + 1]]}
        for j in range(communities // 2)
    ]
    bgp["filters"] = [
        {
            "name": f"filter-{i:02d}",
            "export_v4": [_rule(i, k) for k in range(4)],
            "import_v4": [_rule(i, k + 1) for k in range(2)],
        }
        for i in range(filters)
    ]
    bgp["global_filters"] = ["filter-00", "filter-01"]
    bgp["peers"] = [
        p | {"filters": [f"filter-{(r * 12 + j) % filters:02d}" for j in range(12)]}
        for r, p in enumerate(bgp["peers"])
    ]
    return data | {"bgp": bgp}


def compare_extras(sizes: list[int], rounds: int) -> None:
    """Print median build times of the ToR cluster without and with the BGP extras, and ratios."""
    print(f"{'topology':<34}{'side':>9}{'fresh s':>9}{'cpu s':>8}{'no-op s':>9}{'cpu s':>8}")
    steps = ("fresh", "fresh cpu", "noop", "noop cpu")
    with tempfile.TemporaryDirectory(prefix="calicc-bench-") as tmp:
        for size in sizes:
            plain = with_tors(cluster(size, "rr"))
            texts = {"plain": plain, "extras": with_extras(plain)}
            times: dict[str, dict[str, list[float]]] = {}
            for side, data in texts.items():
                work = Path(tmp) / f"{size}-{side}"
                work.mkdir()
                (work / "cluster.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
                times[side] = {step: [] for step in steps}
            for _ in range(rounds):
                for side in texts:
                    work = Path(tmp) / f"{size}-{side}"
                    fresh = fresh_build([CALICC], work, None)
                    noop = timed([CALICC, "build", "cluster.yaml"], work, None)
                    for step, value in zip(steps, (*fresh, *noop), strict=True):
                        times[side][step].append(value)
            label = f"{size} rr + ToRs, 50 filters/20 comm."
            medians = {s: {k: statistics.median(v) for k, v in t.items()} for s, t in times.items()}
            for side in texts:
                m = medians[side]
                print(
                    f"{label:<34}{side:>9}{m['fresh']:>9.2f}{m['fresh cpu']:>8.2f}"
                    f"{m['noop']:>9.3f}{m['noop cpu']:>8.3f}"
                )
            r = {k: medians["extras"][k] / medians["plain"][k] for k in steps}
            print(
                f"{label:<34}{'ratio':>9}{r['fresh']:>9.2f}{r['fresh cpu']:>8.2f}"
                f"{r['noop']:>9.2f}{r['noop cpu']:>8.2f}   (aim: fresh at most 1.20)"
            )


def run(
    args: Sequence[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run a command; return (seconds, peak RSS in MB, stdout); `check`: it must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak memory
    proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{out}")
    return took, usage.ru_maxrss / 1024, out


def build(directory: Path) -> tuple[float, float, list[str]]:
    took, rss, out = run([CALICC, "build", "cluster.yaml"], directory)
    return took, rss, [line for line in out.splitlines() if ":" in line]


def tree_size(rendered: Path) -> tuple[int, int]:
    """Return (bytes, files) of what index.json lists."""
    index = json.loads((rendered / "index.json").read_text())
    paths = [*index["cluster_files"]]
    paths += [f"nodes/{n}/{rel}" for n, files in index["nodes"].items() for rel in files]
    return sum((rendered / p).stat().st_size for p in paths), len(paths) + 1


def copy_time(rendered: Path, dest: Path) -> float:
    """Return the seconds a plain loop takes to write the tree's files again under `dest`.

    The baseline for the disk's part of a full build: the same directories, files and bytes,
    created one by one (os.mkdir, os.open, os.write), with nothing rendered.
    """
    files = sorted(path for path in rendered.rglob("*") if path.is_file())
    texts = [(path.relative_to(rendered), path.read_bytes()) for path in files]
    os.sync()
    start = time.perf_counter()
    made = set()
    for rel, data in texts:
        parent = dest / rel.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        fd = os.open(dest / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    return time.perf_counter() - start


def kinds_of(lines: list[str], node: str, reflectors: set[str]) -> dict[str, int]:
    """Count the changed/removed files of a build's output by whose they are."""
    counts = {"node": 0, "reflectors": 0, "others": 0, "cluster": 0}
    for line in lines:
        path = line.split(": ", 1)[1]
        parts = path.split("/")
        if parts[0] != "nodes":
            counts["cluster"] += 1
        elif parts[1] == node:
            counts["node"] += 1
        elif parts[1] in reflectors:
            counts["reflectors"] += 1
        else:
            counts["others"] += 1
    return counts


def scenario(work: Path, nodes: int, kind: str) -> dict[str, Any]:
    """Run the steps of one topology in `work` (kept until the whole run ends)."""
    work.mkdir()
    data = cluster(nodes, kind)
    (work / "cluster.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    rendering, _, _ = run([CALICC, "build", "--check", "cluster.yaml"], work, check=False)
    (work / "cluster.lock.yaml").unlink(missing_ok=True)
    os.sync()  # the disk starts each timed build idle
    full, full_rss, _ = build(work)
    size, files = tree_size(work / "rendered")
    writing = copy_time(work / "rendered", work / "copy")
    noop, noop_rss, _ = build(work)
    added = f"node-{nodes:05d}"
    last = data["nodes"][-1]["address"].rsplit(".", 1)[0]
    data["nodes"].append({"name": added, "address": f"{last}.{RACK + 3}/24"})
    (work / "cluster.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    os.sync()
    plus, plus_rss, plus_lines = build(work)
    data["nodes"].pop()
    (work / "cluster.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    os.sync()
    minus, minus_rss, minus_lines = build(work)
    reflectors = {n["name"] for n in data["nodes"] if "route_reflector_cluster_id" in n}
    return {
        "rendering": rendering,
        "writing": writing,
        "full": full,
        "noop": noop,
        "plus": plus,
        "minus": minus,
        "rss": max(full_rss, noop_rss, plus_rss, minus_rss),
        "size": size,
        "files": files,
        "plus_kinds": kinds_of(plus_lines, added, reflectors),
        "minus_kinds": kinds_of(minus_lines, added, reflectors),
    }


def floor() -> float:
    return min(run([sys.executable, "-c", "pass"], Path.cwd())[0] for _ in range(5))


def show_kinds(counts: dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in counts.items())


def export(revision: str, dest: Path) -> Path:
    """Write the files of `revision` under `dest` (git archive) and return that directory."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir()
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def timed(args: Sequence[str], cwd: Path, env: dict[str, str] | None) -> tuple[float, float]:
    """Run a command that must succeed; return (wall seconds, CPU seconds of it and its children).

    CPU time (user + system, rendering workers included) moves much less than wall time when
    other work shares the machine, so the comparison prints both.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def fresh_build(
    command: Sequence[str], work: Path, env: dict[str, str] | None
) -> tuple[float, float]:
    """Return (wall, CPU) seconds of a build with no lock and no tree (both removed first)."""
    (work / "cluster.lock.yaml").unlink(missing_ok=True)
    shutil.rmtree(work / "rendered", ignore_errors=True)
    os.sync()
    return timed([*command, "build", "cluster.yaml"], work, env)


def compare(baseline: str, sizes: list[int], kinds: list[str], rounds: int) -> None:
    """Print the median build times of this tree and of `baseline`, alternating, and ratios."""
    with tempfile.TemporaryDirectory(prefix="calicc-bench-") as tmp:
        base_src = export(baseline, Path(tmp) / "baseline-src")
        sides = {
            "current": ([CALICC], None),
            "baseline": (
                [sys.executable, "-m", "calicc"],
                os.environ | {"PYTHONPATH": str(base_src)},
            ),
        }
        where = [sys.executable, "-c", "import calicc; print(calicc.__file__)"]
        imported = run(where, Path(tmp), env=sides["baseline"][1])[2].strip()
        if not imported.startswith(str(base_src)):
            raise SystemExit(f"the baseline side imports calicc from {imported}, not {base_src}")
        print(f"baseline {baseline}: calicc from {imported}")
        print(f"{'topology':<26}{'side':>9}{'fresh s':>9}{'cpu s':>8}{'no-op s':>9}{'cpu s':>8}")
        steps = ("fresh", "fresh cpu", "noop", "noop cpu")
        runs = [(k, n) for k in kinds for n in ([100] if k == "mesh" else sizes)]
        for number, (kind, size) in enumerate(runs):
            text = yaml.safe_dump(cluster(size, kind))
            times: dict[str, dict[str, list[float]]] = {}
            for side in sides:
                work = Path(tmp) / f"{number}-{side}"
                work.mkdir()
                (work / "cluster.yaml").write_text(text, encoding="utf-8")
                times[side] = {step: [] for step in steps}
            for _ in range(rounds):
                for side, (command, env) in sides.items():
                    work = Path(tmp) / f"{number}-{side}"
                    fresh = fresh_build(command, work, env)
                    noop = timed([*command, "build", "cluster.yaml"], work, env)
                    for step, value in zip(steps, (*fresh, *noop), strict=True):
                        times[side][step].append(value)
            label = f"{size} {kind}"
            medians = {s: {k: statistics.median(v) for k, v in t.items()} for s, t in times.items()}
            for side in sides:
                m = medians[side]
                print(
                    f"{label:<26}{side:>9}{m['fresh']:>9.2f}{m['fresh cpu']:>8.2f}"
                    f"{m['noop']:>9.3f}{m['noop cpu']:>8.3f}"
                )
            r = {k: medians["current"][k] / medians["baseline"][k] for k in steps}
            print(
                f"{label:<26}{'ratio':>9}{r['fresh']:>9.2f}{r['fresh cpu']:>8.2f}"
                f"{r['noop']:>9.2f}{r['noop cpu']:>8.2f}"
            )
            for side in sides:
                shutil.rmtree(Path(tmp) / f"{number}-{side}" / "rendered", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000")
    parser.add_argument("--kinds", default="rr,vxlan,mesh")
    parser.add_argument("--baseline", help="a git revision to compare with, side by side")
    parser.add_argument("--rounds", type=int, default=5, help="builds of each side (--baseline)")
    parser.add_argument(
        "--bgp-extras",
        action="store_true",
        help="compare a cluster with 50 BGP filters and 20 communities with the same without",
    )
    options = parser.parse_args()
    if options.bgp_extras:
        compare_extras([int(s) for s in options.sizes.split(",")], options.rounds)
        return
    if options.baseline:
        sizes = [int(s) for s in options.sizes.split(",")]
        compare(options.baseline, sizes, options.kinds.split(","), options.rounds)
        return
    print(f"`python3 -c pass`: {floor():.3f} s")
    head = f"{'topology':<26}{'render s':>9}{'write s':>8}{'full s':>8}{'/aim':>6}"
    head += f"{'no-op s':>9}{'/aim':>6}"
    print(head + f"{'+1 s':>7}{'-1 s':>7}{'RSS MB':>8}{'tree MB':>9}{'/aim':>6}{'files':>7}")
    changes = []
    with tempfile.TemporaryDirectory(prefix="calicc-bench-") as tmp:  # removed at the end only
        runs = [
            (kind, size)
            for kind in options.kinds.split(",")
            for size in ([100] if kind == "mesh" else [int(s) for s in options.sizes.split(",")])
        ]
        for number, (kind, size) in enumerate(runs):
            r = scenario(Path(tmp) / str(number), size, kind)
            aim = AIMS["mesh"] if kind == "mesh" else AIMS["full"]
            name = {"rr": "3 reflectors, IPIP CS", "vxlan": "VXLAN CrossSubnet"}.get(kind, "mesh")
            label = f"{size} {name}"
            mb = r["size"] / 1e6
            print(
                f"{label:<26}{r['rendering']:>9.2f}{r['writing']:>8.2f}{r['full']:>8.2f}"
                f"{r['full'] / aim:>6.2f}"
                f"{r['noop']:>9.3f}{r['noop'] / AIMS['no-op']:>6.2f}"
                f"{r['plus']:>7.2f}{r['minus']:>7.2f}"
                f"{r['rss']:>8.0f}{mb:>9.1f}{mb / AIMS['tree_mb']:>6.2f}{r['files']:>7}"
            )
            changes.append(
                f"{label}: +1 node rewrote {show_kinds(r['plus_kinds'])}; "
                f"-1 node rewrote or removed {show_kinds(r['minus_kinds'])}"
            )
    print("\n".join(changes))


if __name__ == "__main__":
    main()
