"""Run the pod probes of lab.matrix and the egress NAT probes; return check rows.

Probes run several at once (each is a `ping` process); results are reported in plan order,
IPv4 rows first, then IPv6 rows when the pods have IPv6 addresses.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from calicc.contract.names import V4
from calicc.lab.matrix import Paths, Probe, mtu_probes, node_pod_probes, pod_pod_probes
from calicc.lab.probe import ping, send_udp, udp_listener
from calicc.lab.topology import EXTERNAL_HOST, EXTERNAL_HOST_V6
from calicc.lab.verify import FAIL, PASS, SKIP, Row

WORKERS = 8


def _word(answered: bool) -> str:
    return "reply" if answered else "no reply"


def run_probe(probe: Probe) -> Row:
    """Run one probe and compare what happened with what was expected."""
    expected = _word(probe.answered)
    if probe.skip:
        return Row(probe.check, probe.subject, expected, probe.skip, SKIP)
    tries = 1 if probe.size is not None else 2
    seen = any(
        ping(probe.src_ns, probe.target, probe.size, probe.size is not None) for _ in range(tries)
    )
    status = PASS if seen == probe.answered else FAIL
    return Row(probe.check, probe.subject, expected, _word(seen), status)


def run_probes(probes: list[Probe]) -> list[Row]:
    """Run `probes` concurrently; return their rows in the same order."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(run_probe, probes))


def nat_rows(paths: Paths, log: Path, version: int = 4) -> list[Row]:
    """Each node's first pod sends UDP to the external namespace, which reports the source.

    A pod of a nat_outgoing pool must arrive as its node's address of the same family (NAT44,
    NAT66), any other as itself.
    """
    target = str(EXTERNAL_HOST.ip if version == V4 else EXTERNAL_HOST_V6.ip)
    rows = []
    with udp_listener(paths.topo.external_ns, target, log) as ear:
        pods = paths.first_pods(version)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(lambda p: send_udp(p.netns, target, p.name), pods))
        for pod in pods:
            address = pod.address_of(version)
            nat = paths.pool_nat(address)
            want = paths.node_address(pod.node, version) if nat else address
            seen = ear.wait_for(pod.name) or "nothing received"
            what = "source NATed to node" if nat else "source kept (nat_outgoing false)"
            subject = f"{pod.name} ({address}) -> external: {what}"
            rows.append(Row("egress-nat", subject, want, seen, PASS if seen == want else FAIL))
    return rows


def pod_rows(paths: Paths, log: Path) -> list[Row]:
    """Return every pod row of each family the pods have: pod-pod, node-pod, pod-node, MTU, NAT.

    The IPv6 listener writes beside `log` (`<stem>-v6<suffix>`).
    """
    rows: list[Row] = []
    for version in paths.families():
        probes = pod_pod_probes(paths, version)
        probes += node_pod_probes(paths, version) + mtu_probes(paths, version)
        ear = log if version == V4 else log.with_name(f"{log.stem}-v6{log.suffix}")
        rows += run_probes(probes) + nat_rows(paths, ear, version)
    return rows
