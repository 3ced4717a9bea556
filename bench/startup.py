"""Start-up speed: `calicc build` of examples/minikube-ipip with nothing to do, beside `pass`.

Times, as separate processes, median of N runs taken in turns (so a busy machine slows all
alike): `python -c pass` (the baseline), `python -c "import pydantic"` (a reference),
`calicc --help`, the no-op build as calicc runs it (recognised from its cache entry, see
compiler/uptodate.py), and the same no-op build with no cache (XDG_CACHE_HOME unusable: the
full load, plan and render that find nothing changed). Prints each as seconds and as a ratio
of the baseline, and the no-op build against the 0.25 s aim.
Run: .venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "minikube-ipip"
AIM_SECONDS = 0.25


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cases(tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    work = tmp / "minikube-ipip"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("rendered"))
    build = [sys.executable, "-m", "calicc", "build", str(work / "cluster.yaml")]
    cached = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
    uncached = {**os.environ, "XDG_CACHE_HOME": os.devnull}  # not a directory: no cache
    subprocess.run(build, env=cached, check=True, capture_output=True)  # render, and record
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], cached),
        "python -c 'import pydantic'": ([sys.executable, "-c", "import pydantic"], cached),
        "calicc --help": ([sys.executable, "-m", "calicc", "--help"], cached),
        "calicc build, no-op": (build, cached),
        "calicc build, no-op, no cache": (build, uncached),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="calicc-bench-") as tmp:
        runs = cases(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, (argv, env) in runs.items():
                times[name].append(timed(argv, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["python -c pass"]
    print(f"{'command':<32} {'median s':>9} {'min s':>7} {'/ pass':>7}   ({args.runs} runs each)")
    for name, median in medians.items():
        print(f"{name:<32} {median:>9.3f} {min(times[name]):>7.3f} {median / baseline:>7.1f}")
    noop = medians["calicc build, no-op"]
    print(f"no-op build / {AIM_SECONDS} s aim: {noop / AIM_SECONDS:.2f}")


if __name__ == "__main__":
    main()
