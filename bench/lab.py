"""Lab speed: `calicc lab up`, `check` and `down` of examples/large-rr (200 nodes, 3 reflectors).

Runs the three commands as a user would (the console script of this interpreter, a fresh lab
name under a short --base in /run), on a copy of the example so that nothing under examples/
is written. Beside it, as a baseline in the same run, a small example (offcluster-rr: 3 nodes
and a GoBGP reflector). Prints each phase's seconds, and large-rr's against the aims: up 90 s,
check 60 s (the policy walkthrough included), down 20 s. `down` always runs, also after a
failed phase. large-rr gets pods on 8 nodes, as tests/e2e does (--pod-nodes; pods on all 200
nodes overflow the kernel's neighbour table, which every namespace shares).
Needs root, bird, birdc, gobgpd, gobgp.
Run: sudo .venv/bin/python bench/lab.py [--pod-nodes 8] [--baseline offcluster-rr|none]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LARGE = "large-rr"
AIMS = {"up": 90.0, "check": 60.0, "down": 20.0}


def calicc() -> str:
    return str(Path(sys.executable).with_name("calicc"))


def timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def run_example(example: str, work: Path, pod_nodes: int) -> dict[str, tuple[float, str]]:
    """Return {phase: (seconds, "ok" or the failure)} for up, check and down of `example`."""
    copy = work / example
    shutil.copytree(EXAMPLES / example, copy, ignore=shutil.ignore_patterns("rendered"))
    cluster = str(copy / "cluster.yaml")
    lab = ["--name", f"b{uuid.uuid4().hex[:7]}", "--base", str(work / "labs")]
    phases = {
        "up": [calicc(), "lab", "up", cluster, *lab, "--pod-nodes", str(pod_nodes)],
        "check": [calicc(), "lab", "check", cluster, *lab],
        "down": [calicc(), "lab", "down", cluster, *lab],
    }
    results: dict[str, tuple[float, str]] = {}
    try:
        for phase in ("up", "check"):
            seconds, done = timed(phases[phase])
            results[phase] = (seconds, verdict(done))
            if done.returncode != 0:
                break
    finally:
        seconds, done = timed(phases["down"])
        results["down"] = (seconds, verdict(done))
    return results


def verdict(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode == 0:
        return "ok"
    text = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"exit {done.returncode}: {text[-1] if text else ''}"[:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pod-nodes", type=int, default=8, help="pods on N nodes of large-rr")
    parser.add_argument("--baseline", default="offcluster-rr", help="small example, or none")
    args = parser.parse_args()
    examples = [LARGE] if args.baseline == "none" else [args.baseline, LARGE]
    table: dict[str, dict[str, tuple[float, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="cbl-", dir="/run") as tmp:  # short socket paths
        for example in examples:
            table[example] = run_example(example, Path(tmp), args.pod_nodes)
    print(f"{'phase':<6} " + " ".join(f"{e + ' s':>16}" for e in examples) + "  aim s  / aim")
    for phase, aim in AIMS.items():
        cells = [table[e].get(phase, (float("nan"), "not run"))[0] for e in examples]
        large = cells[-1]
        row = " ".join(f"{c:>16.1f}" for c in cells)
        print(f"{phase:<6} {row}  {aim:>5.0f}  {large / aim:>5.2f}")
    for example in examples:
        for phase, (_, result) in table[example].items():
            if result != "ok":
                print(f"{example} {phase}: {result}")


if __name__ == "__main__":
    main()
