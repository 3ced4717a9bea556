"""Host protection's static chains and hooks, spliced into the shared iptables rules.

Added only when the cluster file has `host_protection:` (as Calico's felix/rules/static.go):

    filter cali-INPUT    after the tunnel and workload rules: accept what pre-DNAT policy
                         accepted, then cali-from-host-endpoint, then accept what it allowed
    filter cali-OUTPUT   hooked from OUTPUT: traffic to workloads returns, IPIP/VXLAN to the
                         nodes is accepted, then (not DNAT'd) cali-to-host-endpoint
    filter cali-FORWARD  cali-from-hep-forward after the mark reset, cali-to-hep-forward
                         before the final accept (applyOnForward policy)
    mangle cali-PREROUTING  after the established rule: cali-from-host-endpoint (pre-DNAT)

The same in ip6tables (`version` 6: compiler/targets/ip6tables.py calls `host_tables` on its
tables) for a cluster with IPv6 nodes: the failsafe chains hold the ports whose net is IPv6 or
absent, the policy chains the rules of IPv6 (compiler/host/rules.py), VXLAN to the nodes is
matched by their IPv6 set; the agent adds ICMPv6 neighbour discovery to the endpoint chains.

The four dispatch chains hold only their RETURN rules for `lo` and the workloads' `cali+`
interfaces (never a host endpoint); the agent appends the node's interfaces
(contract/host.py). The failsafe chains, and every host policy chain, are written here once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from calicc.compiler.host.rules import failsafe_lines
from calicc.contract.host import (
    FAILSAFE_IN,
    FAILSAFE_OUT,
    FROM_HOST,
    FROM_HOST_FORWARD,
    TO_HOST,
    TO_HOST_FORWARD,
    WORKLOAD_IFACES,
)
from calicc.contract.names import ALL_HOSTS_SET, ALL_HOSTS_SET_V6, V4, VXLAN_PORT
from calicc.contract.syntax import ACCEPT_MATCH, CLEAR_MARKS, comment, rule

if TYPE_CHECKING:
    from calicc.compiler.host.plan import HostPlan
    from calicc.compiler.targets.iptables import ChainView, TableView

OUTPUT = "cali-OUTPUT"


def _returns(chain: str, flag: str) -> tuple[str, ...]:
    return (
        rule(chain, f"{flag} lo", comment("loopback: never a host endpoint"), "-j RETURN"),
        rule(
            chain, f"{flag} {WORKLOAD_IFACES}", comment("workloads: their own policy"), "-j RETURN"
        ),
    )


def _output_rules(encaps: frozenset[str], version: int) -> tuple[str, ...]:
    hosts = f"-m set --match-set {ALL_HOSTS_SET if version == V4 else ALL_HOSTS_SET_V6} dst"
    lines = [
        rule(
            OUTPUT, f"-o {WORKLOAD_IFACES}", comment("to a workload: not host policy"), "-j RETURN"
        )
    ]
    if "ipip" in encaps:
        lines.append(
            rule(OUTPUT, "-p ipencap", hosts, comment("IPIP to cluster nodes"), "-j ACCEPT")
        )
    if "vxlan" in encaps:
        vxlan = f"-p udp -m udp --dport {VXLAN_PORT}"
        lines.append(rule(OUTPUT, vxlan, hosts, comment("VXLAN to cluster nodes"), "-j ACCEPT"))
    return (
        *lines,
        rule(OUTPUT, comment("clear calicc mark bits"), CLEAR_MARKS),
        rule(
            OUTPUT,
            "-m conntrack ! --ctstate DNAT",
            comment("host endpoint egress policy"),
            f"-j {TO_HOST}",
        ),
        rule(OUTPUT, ACCEPT_MATCH, comment("allowed by host policy"), "-j ACCEPT"),
    )


def _input_rules() -> tuple[str, ...]:
    name = "cali-INPUT"
    return (
        rule(name, ACCEPT_MATCH, comment("accepted by pre-DNAT host policy"), "-j ACCEPT"),
        rule(name, comment("host endpoint ingress policy"), f"-j {FROM_HOST}"),
        rule(name, ACCEPT_MATCH, comment("allowed by host policy"), "-j ACCEPT"),
    )


def _forward_rules(rules: tuple[str, ...]) -> tuple[str, ...]:
    """Put the forward dispatch after the mark reset and before the final accept."""
    name = "cali-FORWARD"
    into = rule(
        name, comment("host endpoint ingress policy (applyOnForward)"), f"-j {FROM_HOST_FORWARD}"
    )
    out = rule(
        name, comment("host endpoint egress policy (applyOnForward)"), f"-j {TO_HOST_FORWARD}"
    )
    reset = next(i for i, r in enumerate(rules) if CLEAR_MARKS in r)
    accept = max(i for i, r in enumerate(rules) if ACCEPT_MATCH in r and r.endswith("-j ACCEPT"))
    return (*rules[: reset + 1], into, *rules[reset + 1 : accept], out, *rules[accept:])


def _policy_views(host: HostPlan, *, pre_dnat: bool, version: int) -> list[ChainView]:
    from calicc.compiler.targets.iptables import ChainView  # noqa: PLC0415 (cycle)

    views = []
    for p in host.policies:
        if p.loaded.policy.spec.preDNAT != pre_dnat:
            continue
        for chain in p.chains(version):
            if chain is not None:
                count = sum(1 for r in chain.rules if "-j RETURN" not in r)
                note = f"host policy {p.name} ({p.loaded.where()}) {chain.direction}: {count} rules"
                views.append(ChainView(chain.name, note, chain.rules))
    return views


def _failsafe_views(host: HostPlan, *, outbound: bool, version: int) -> list[ChainView]:
    from calicc.compiler.targets.iptables import ChainView  # noqa: PLC0415 (cycle)

    s = host.settings
    views = [
        ChainView(
            FAILSAFE_IN,
            "failsafe: always open to the node",
            tuple(failsafe_lines(FAILSAFE_IN, s.failsafe_inbound, "in", version)),
        )
    ]
    if outbound:
        views.append(
            ChainView(
                FAILSAFE_OUT,
                "failsafe: the node may always reach",
                tuple(failsafe_lines(FAILSAFE_OUT, s.failsafe_outbound, "out", version)),
            )
        )
    return views


FILTER_DISPATCH = (
    (FROM_HOST, "-i", "fh"),
    (TO_HOST, "-o", "th"),
    (FROM_HOST_FORWARD, "-i", "fhfw"),
    (TO_HOST_FORWARD, "-o", "thfw"),
)
MANGLE_DISPATCH = ((FROM_HOST, "-i", "fh"),)


def _dispatch_views(specs: tuple[tuple[str, str, str], ...]) -> list[ChainView]:
    from calicc.compiler.targets.iptables import ChainView  # noqa: PLC0415 (cycle)

    return [
        ChainView(
            name,
            f"the agent appends the node's interfaces: {flag} IF -g cali-{kind}-IF, '*' last",
            _returns(name, flag),
        )
        for name, flag, kind in specs
    ]


def _splice(chain: ChainView) -> ChainView:
    if chain.name == "cali-INPUT":
        return replace(chain, rules=(*chain.rules, *_input_rules()))
    if chain.name == "cali-FORWARD":
        return replace(chain, rules=_forward_rules(chain.rules))
    return chain


def host_tables(
    host: HostPlan, encaps: frozenset[str], tables: tuple[TableView, ...], version: int = V4
) -> tuple[TableView, ...]:
    """Return `tables` with host protection's hooks, static chains and policy chains.

    `version` 6: the tables are ip6tables' (compiler/targets/ip6tables.py), `encaps` those
    of the node kind's IPv6 pools.
    """
    from calicc.compiler.targets.iptables import ChainView  # noqa: PLC0415 (cycle)

    out = []
    for table in tables:
        chains = list(table.chains)
        if table.name == "filter":
            chains = [_splice(c) for c in chains]
            chains.append(
                ChainView(
                    OUTPUT,
                    "filter OUTPUT: host endpoint egress policy",
                    _output_rules(encaps, version),
                )
            )
            chains += _dispatch_views(FILTER_DISPATCH)
            chains += _failsafe_views(host, outbound=True, version=version)
            chains += _policy_views(host, pre_dnat=False, version=version)
        elif table.name == "mangle":
            chains = [_prerouting(c) for c in chains]
            chains += _dispatch_views(MANGLE_DISPATCH)
            chains += _failsafe_views(host, outbound=False, version=version)
            chains += _policy_views(host, pre_dnat=True, version=version)
        out.append(replace(table, chains=tuple(chains)))
    return tuple(out)


def _prerouting(chain: ChainView) -> ChainView:
    if chain.name != "cali-PREROUTING":
        return chain
    extra = (
        rule(chain.name, comment("pre-DNAT host endpoint policy"), f"-j {FROM_HOST}"),
        rule(chain.name, ACCEPT_MATCH, comment("accepted by pre-DNAT host policy"), "-j ACCEPT"),
    )
    return replace(chain, rules=(*chain.rules, *extra))
