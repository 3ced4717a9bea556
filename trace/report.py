"""A trace as text for a person, or as JSON for a program (the same facts)."""

from __future__ import annotations

from typing import Any

from calicc.trace.answer import Check, Trace
from calicc.trace.walk import Step

WIDTH = 15  # the label column


def _rule(step: Step | None) -> str:
    if step is None:
        return "no rule matched"
    if step.number == 0:
        return f"{step.table} {step.chain} policy {step.action}"
    comment = f' "{step.comment}"' if step.comment else ""
    return f"{step.table} {step.chain} #{step.number}{comment}"


def _line(label: str, text: str) -> str:
    return f"  {label:<{WIDTH}}{text}"


def _check_lines(check: Check) -> list[str]:
    verdict = "allowed" if check.passed else "DENIED"
    head = f"{verdict} at {check.node} ({check.hook}, {check.what})"
    lines = [_line("policy", head)]
    if check.policy:
        lines.append(_line("", f"by {check.policy}"))
    decided, last = check.decided_by, check.verdict.deciding
    lines.append(_line("", f"rule {_rule(decided)}"))
    if last is not None and last != decided:
        lines.append(_line("", f"then {_rule(last)}"))
    return lines


def as_text(trace: Trace) -> str:
    """Return the trace for a person, hop by hop, ending with the verdict."""
    family = f"IPv{trace.family}"
    lines = [f"trace {trace.src.given} -> {trace.dst.given} {trace.port.text()} ({family})"]
    lines.append(_line("source", trace.src.text()))
    lines.append(_line("destination", trace.dst.text()))
    route = trace.route
    if route is None:
        lines.append(_line("route", "the source is outside the cluster: the underlay routes it"))
    else:
        where = trace.src.node.name if trace.src.node else "?"
        lines.append(_line("route", f"on {where}: {route.route}"))
        lines.append(_line("", f"installed by {route.installed_by}"))
        lines.append(_line("", route.why))
        encap = "none" if route.encapsulation == "none" else route.encapsulation.upper()
        lines.append(_line("encapsulation", encap))
    if trace.path_mtu is not None:
        ping = f"ping -M do -s {trace.largest_ping}"
        lines.append(
            _line("path MTU", f"{trace.path_mtu}: larger packets do not pass unfragmented ({ping})")
        )
    if trace.snat is not None:
        lines.append(_line("SNAT", f"to the node's address by {_rule(trace.snat)}"))
    elif route is not None:
        lines.append(_line("SNAT", "none"))
    for check in trace.checks:
        lines += _check_lines(check)
    lines.append(_line("verdict", trace.outcome.upper()))
    return "\n".join(lines) + "\n"


def _step(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "table": step.table,
        "chain": step.chain,
        "rule": step.number,
        "text": step.text,
        "comment": step.comment,
        "action": step.action,
    }


def as_json(trace: Trace) -> dict[str, Any]:
    """Return the trace as plain JSON data."""
    route = trace.route

    def end(e: Any) -> dict[str, Any]:
        return {
            "kind": e.kind,
            "given": e.given,
            "address": str(e.address),
            "node": e.node.name if e.node else None,
            "interface": e.pod.iface if e.pod else None,
        }

    return {
        "src": end(trace.src),
        "dst": end(trace.dst),
        "protocol": trace.port.proto,
        "port": trace.port.port,
        "family": trace.family,
        "outcome": trace.outcome,
        "route": None
        if route is None
        else {
            "kind": route.kind,
            "route": route.route,
            "device": route.device,
            "via": str(route.via) if route.via else None,
            "encapsulation": route.encapsulation,
            "installed_by": route.installed_by,
            "why": route.why,
            "pool": route.pool.name if route.pool else None,
            "learned": [x.text() for x in route.learned],
        },
        "path_mtu": trace.path_mtu,
        "largest_ping_payload": trace.largest_ping,
        "snat": _step(trace.snat),
        "checks": [
            {
                "node": c.node,
                "hook": c.hook,
                "what": c.what,
                "verdict": c.verdict.verdict,
                "passed": c.passed,
                "deciding": _step(c.verdict.deciding),
                "decided_by": _step(c.decided_by),
                "policy": c.policy,
            }
            for c in trace.checks
        ],
    }
