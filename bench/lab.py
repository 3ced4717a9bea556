"""Lab speed: `calicc lab up`, `check` and `down` of examples/large-rr (200 nodes, 3 reflectors).

Runs the three commands as a user would (the console script of this interpreter, a fresh lab
name under a short --base in /run), on a copy of the example so that nothing under examples/
is written. Beside it, as a baseline in the same run, a small example (offcluster-rr: 3 nodes
and a GoBGP reflector). Prints each phase's seconds, and large-rr's against the aims: up 90 s,
check 60 s (the policy walkthrough included), down 20 s; and the CPU seconds each command and
its children used (not the daemons it leaves running), which other load on the machine does
not inflate. `down` always runs, also after a failed phase. Without --pod-nodes, `lab up`
gives large-rr pods on 8 nodes (its default above 16 nodes, as tests/e2e asks: pods on all 200
would overflow the kernel's neighbour table, which every namespace shares).
Needs root, bird, birdc, gobgpd, gobgp.
Run: sudo .venv/bin/python bench/lab.py [--pod-nodes N] [--baseline offcluster-rr|none]
"""

from __future__ import annotations

import argparse
import resource
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


Result = tuple[float, float, str]  # seconds, CPU seconds, "ok" or the failure


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str]) -> Result:
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, children_cpu() - cpu, verdict(done)


def run_example(example: str, work: Path, pod_nodes: int | None) -> dict[str, Result]:
    """Return {phase: (seconds, CPU seconds, "ok" or the failure)} of up, check and down."""
    copy = work / example
    shutil.copytree(EXAMPLES / example, copy, ignore=shutil.ignore_patterns("rendered"))
    cluster = str(copy / "cluster.yaml")
    lab = ["--name", f"b{uuid.uuid4().hex[:7]}", "--base", str(work / "labs")]
    pods = [] if pod_nodes is None else ["--pod-nodes", str(pod_nodes)]
    phases = {
        "up": [calicc(), "lab", "up", cluster, *lab, *pods],
        "check": [calicc(), "lab", "check", cluster, *lab],
        "down": [calicc(), "lab", "down", cluster, *lab],
    }
    results: dict[str, Result] = {}
    try:
        for phase in ("up", "check"):
            results[phase] = timed(phases[phase])
            if results[phase][2] != "ok":
                break
    finally:
        results["down"] = timed(phases["down"])
    return results


def verdict(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode == 0:
        return "ok"
    text = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"exit {done.returncode}: {text[-1] if text else ''}"[:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pod-nodes", type=int, help="lab up --pod-nodes (default: the lab's)")
    parser.add_argument("--baseline", default="offcluster-rr", help="small example, or none")
    args = parser.parse_args()
    examples = [LARGE] if args.baseline == "none" else [args.baseline, LARGE]
    table: dict[str, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="cbl-", dir="/run") as tmp:  # short socket paths
        for example in examples:
            table[example] = run_example(example, Path(tmp), args.pod_nodes)
    print_table(table, examples)


def print_table(table: dict[str, dict[str, Result]], examples: list[str]) -> None:
    heads = " ".join(f"{e + ' s':>16} {'cpu s':>7}" for e in examples)
    print(f"{'phase':<6} {heads}  aim s  / aim")
    missing: Result = (float("nan"), float("nan"), "not run")
    for phase, aim in AIMS.items():
        cells = [table[e].get(phase, missing) for e in examples]
        row = " ".join(f"{c[0]:>16.1f} {c[1]:>7.1f}" for c in cells)
        print(f"{phase:<6} {row}  {aim:>5.0f}  {cells[-1][0] / aim:>5.2f}")
    for example in examples:
        for phase, (_, _, result) in table[example].items():
            if result != "ok":
                print(f"{example} {phase}: {result}")


if __name__ == "__main__":
    main()
