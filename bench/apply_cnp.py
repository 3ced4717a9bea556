"""Benchmark: a full `calicc apply` with and without 20 ClusterNetworkPolicies (root only).

Issue 12's aim: 20 ClusterNetworkPolicies add at most 20% to a full apply of bench/apply.py's
node (100 NetworkPolicies, 110 pods as endpoint records). The 20 policies (10 Admin, 10
Baseline, priorities 0-9) each select every pod and have an ingress and an egress chain of
three rules (a Deny, an Accept and its return): the worst case of 20 policies. As the compiler
renders them (compiler/policy/syntax.py), each tier and direction has one chain that jumps to
each policy's chain for the pods of its subject, a runtime selector set (all pods, filled by
the agent from the endpoint records). Every pod's ingress chain (a NetworkPolicy selects it)
gains one jump to the Admin tier chain; its egress chain (no NetworkPolicy) ends with a goto
to cali-cnp-out (Admin, Baseline, allow) instead of its allow. Each full apply runs in a
fresh namespace (calicc-bench-cnp-<pid>-<n>, removed at once), the two variants alternating,
ROUNDS times; prints the medians, the rules each variant restores, and the ratio.
Usage: sudo .venv/bin/python bench/apply_cnp.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from apply import GROUPS, POLICIES, endpoint_records, pod_address, rules, timed

from calicc.agent.apply import Options, Reconciler
from calicc.compiler.policy.cnp import TierJump
from calicc.compiler.policy.syntax import direction_tiers
from calicc.contract.names import (
    ADMIN_EGRESS_PREFIX,
    ADMIN_INGRESS_PREFIX,
    BASELINE_EGRESS_PREFIX,
    BASELINE_INGRESS_PREFIX,
    TIER_CHAINS,
)
from calicc.contract.syntax import ACCEPT_MATCH, SET_ACCEPT
from tests.support.bundles import derive_bundle, rendered

CNPS = 20
ROUNDS = 11
ALL: dict[str, object] = {"matchExpressions": [], "matchLabels": {}}
SUBJECT = "cali40s:bench-all"  # every pod: the subject of every policy


def cnp_chains(i: int) -> tuple[str, str, str]:
    """Return the tier and the ingress and egress chains of ClusterNetworkPolicy i."""
    admin = i < CNPS // 2
    ingress = ADMIN_INGRESS_PREFIX if admin else BASELINE_INGRESS_PREFIX
    egress = ADMIN_EGRESS_PREFIX if admin else BASELINE_EGRESS_PREFIX
    return ("Admin" if admin else "Baseline"), f"{ingress}c{i:02d}", f"{egress}c{i:02d}"


def cnp_rules(count: int) -> tuple[list[str], list[str]]:
    """Return the declarations and rules of `count` ClusterNetworkPolicies' and tier chains."""
    declared: list[str] = []
    lines: list[str] = []
    jumps: dict[tuple[str, str], list[TierJump]] = {key: [] for key in TIER_CHAINS}
    for i in range(count):
        tier, *chains = cnp_chains(i)
        for chain, side, direction in zip(
            chains, ("src", "dst"), ("ingress", "egress"), strict=True
        ):
            declared.append(f":{chain} - [0:0]")
            peer = f"-m set --match-set cali40pods {side}"
            lines += [
                f"-A {chain} -p tcp -m tcp --dport {7000 + i} {peer} -j DROP",
                f"-A {chain} -p tcp -m tcp --dport {7100 + i} {peer} {SET_ACCEPT}",
                f"-A {chain} {ACCEPT_MATCH} -j RETURN",
            ]
            jumps[tier, direction].append(TierJump(SUBJECT, chain, f"c{i:02d}", decides=True))
    for direction in ("ingress", "egress"):
        by_tier = {tier: jumps[tier, direction] for tier in ("Admin", "Baseline")}
        for chain, _, tier_lines in direction_tiers(direction, by_tier):
            declared.append(f":{chain} - [0:0]")
            lines += tier_lines
    return declared, lines


def with_cnps(count: int) -> str:
    """Return bench/apply.py's iptables.rules with `count` ClusterNetworkPolicy chains added."""
    declared, lines = cnp_rules(count)
    text = rules().replace("*filter\n", "*filter\n" + "".join(d + "\n" for d in declared), 1)
    return text.replace("COMMIT\n", "".join(line + "\n" for line in lines) + "COMMIT\n", 1)


def bindings(count: int) -> list[dict[str, object]]:
    """Return policy.json's bindings: bench/apply.py's 100 policies, then `count` CNPs."""
    policies: list[dict[str, object]] = [
        {
            "namespace": "bench",
            "name": f"p{i:03d}",
            "pod_selector": {"matchLabels": {"app": f"a{i % GROUPS}"}},
            "ingress_chain": f"cali-pi-p{i:03d}",
        }
        for i in range(POLICIES)
    ]
    for i in range(count):
        tier, ingress, egress = cnp_chains(i)
        policies.append(
            {
                "tier": tier,
                "priority": i % (CNPS // 2),
                "name": f"c{i:02d}",
                "namespace_selector": ALL,
                "pod_selector": ALL,
                "ingress_chain": ingress,
                "egress_chain": egress,
            }
        )
    return policies


def bundle(directory: Path, count: int) -> None:
    """Write bench/apply.py's bundle with `count` ClusterNetworkPolicies added."""
    pods = [pod_address(i) for i in range(110)]
    sets: list[dict[str, object]] = [{"name": "cali40pods", "type": "hash:ip", "members": pods}]
    if count:
        selector = {"namespaceSelector": ALL, "podSelector": ALL}
        sets.append({"name": SUBJECT, "type": "hash:ip", "selector": selector})
    jumps = [{"table": "filter", "chain": "FORWARD", "rule": "-j cali-FORWARD"}]
    base = rendered("minikube-ipip", "minikube")
    bird = {**json.loads((base / "node.json").read_text())["bird"], "enabled": False}
    derive_bundle(
        base,
        directory,
        iptables=with_cnps(count),
        policy={"ipsets": sets, "policies": bindings(count)},
        settings={"jump_rules": jumps},
        bird=bird,
    )


def inner(count: int) -> None:
    """Measure one full apply of the bundle with `count` CNPs, inside the namespace."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle(work / "b", count)
        endpoint_records(work / "root")
        rec = Reconciler(Options(root=work / "root", allow_tunnel_standin=True))
        seconds, commands, _ = timed(rec, work / "b")
        live = subprocess.run(
            ["iptables-save", "-t", "filter"], check=True, capture_output=True, text=True
        ).stdout
        rule_count = sum(1 for line in live.splitlines() if line.startswith("-A "))
        print(json.dumps({"seconds": seconds, "commands": commands, "rules": rule_count}))


def one_run(count: int, n: int) -> dict[str, float]:
    """Run one full apply with `count` CNPs in a fresh namespace; return its figures."""
    ns = f"calicc-bench-cnp-{os.getpid()}-{n}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run = ["ip", "netns", "exec", ns]
        for cmd in (
            "ip link set lo up",
            "ip link add eth0 type veth peer name p0",
            "ip addr add 192.168.49.2/24 dev eth0",
            "ip link set eth0 up",
            "ip link add tunl0 type ifb",
        ):
            subprocess.run([*run, *cmd.split()], check=True)
        out = subprocess.run(
            [*run, sys.executable, __file__, "--inner", str(count)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    data: dict[str, float] = json.loads(out.splitlines()[-1])
    return data


def main() -> None:
    """Alternate full applies without and with the CNPs; print medians and the ratio."""
    runs: dict[int, list[dict[str, float]]] = {0: [], CNPS: []}
    for n in range(ROUNDS):
        for count, found in runs.items():
            found.append(one_run(count, n * 2 + (count > 0)))
    print(f"node: {POLICIES} NetworkPolicies, 110 pods; full apply, median of {ROUNDS} fresh runs")
    medians = {}
    for count, found in runs.items():
        medians[count] = statistics.median(r["seconds"] for r in found)
        each = ", ".join(f"{r['seconds'] * 1000:.0f}" for r in found)
        print(
            f"{count:>3} ClusterNetworkPolicies: {medians[count] * 1000:7.1f} ms (runs {each})"
            f"  filter rules {int(found[0]['rules'])}  commands {int(found[0]['commands'])}"
        )
    ratio = medians[CNPS] / medians[0]
    print(f"full apply with {CNPS} CNPs / without: x{ratio:.2f} (aim: at most x1.20)")


if __name__ == "__main__":
    inner(int(sys.argv[2])) if "--inner" in sys.argv else main()
