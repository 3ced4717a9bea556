"""Reachability intents: what must, or must not, reach what; each checked by a trace.

An intents file (docs/trace.md) lists expectations: from an end, to an end (a pod as
`namespace/name`, a node or an address, as `calicc trace` takes them), a port and protocol (or
a ping), allow or deny, and optionally the encapsulation the path must use and the smallest
path MTU it may have. `check_intents` traces each one on a rendered tree and returns the ones
the trace contradicts, each with the trace that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.load import Source, read_yaml
from calicc.compiler.spec_errors import problems_from
from calicc.contract.fields import Dns1123Label
from calicc.contract.manifest import Strict
from calicc.trace.answer import PORT, Port, Trace, Tracer, parse_port
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError

MTU_MIN, MTU_MAX = 68, 65535
MAPPING_EXPECTED = (
    "expected a mapping with `intents:` (a list of expectations, each with name, from, to, "
    "expect); see docs/trace.md"
)


class IntentSpec(Strict):
    """One expectation, as written in the file."""

    name: Dns1123Label
    source: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    port: str | None = None
    expect: Literal["allow", "deny"]
    encapsulation: Literal["none", "ipip", "vxlan"] | None = None
    min_mtu: int | None = Field(None, ge=MTU_MIN, le=MTU_MAX)
    family: Literal[4, 6] | None = None

    @field_validator("port")
    @classmethod
    def _port(cls, port: str | None) -> str | None:
        if port is not None and PORT.match(port) is None:
            raise ValueError("give PORT or PORT/PROTO (TCP, UDP or SCTP), e.g. 8080/TCP")
        return port


class IntentsSpec(Strict):
    """The whole intents file."""

    intents: tuple[IntentSpec, ...]


@dataclass(frozen=True)
class Intent:
    """One expectation, with where it is written."""

    name: str
    source: str
    to: str
    port: Port
    expect: str
    encapsulation: str | None
    min_mtu: int | None
    family: int | None
    where: str  # file:line

    def text(self) -> str:
        """Return e.g. `web-from-api (intents.yaml:3): shop/api -> shop/web TCP/8080 allow`."""
        return f"{self.name} ({self.where}): {self.source} -> {self.to} {self.port.text()}"


@dataclass(frozen=True)
class Violation:
    """An intent the trace contradicts, why, and the trace."""

    intent: Intent
    reason: str
    trace: Trace


def load_intents(path: Path) -> tuple[Intent, ...]:
    """Read and check the intents file at `path`.

    Raises:
        SpecError: every problem, located at file:line: field (a duplicate name among them).
    """
    source = read_yaml(path)
    if not isinstance(source.data, dict):
        raise SpecError([source.problem((), MAPPING_EXPECTED)])
    try:
        spec = IntentsSpec.model_validate(source.data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, source, IntentsSpec)) from exc
    problems = _duplicates(spec, source)
    if problems:
        raise SpecError(problems)
    return tuple(_intent(item, source, index) for index, item in enumerate(spec.intents))


def _duplicates(spec: IntentsSpec, source: Source) -> list[Problem]:
    first: dict[str, int] = {}
    found = []
    for index, item in enumerate(spec.intents):
        seen = first.setdefault(item.name, index)
        if seen != index:
            line, _ = source.position(("intents", seen))
            message = f"intent {item.name} is named twice (also at line {line}); names are unique"
            found.append(source.problem(("intents", index, "name"), message))
    return found


def _intent(item: IntentSpec, source: Source, index: int) -> Intent:
    line, _ = source.position(("intents", index))
    return Intent(
        name=item.name,
        source=item.source,
        to=item.to,
        port=parse_port(item.port),
        expect=item.expect,
        encapsulation=item.encapsulation,
        min_mtu=item.min_mtu,
        family=item.family,
        where=f"{source.path}:{line}",
    )


def check_intents(intents: Sequence[Intent], cluster: Cluster) -> list[Violation]:
    """Trace every intent; return those the trace contradicts, in file order.

    Raises:
        TraceError: an intent names nothing of the cluster (the intent and its line named).
    """
    tracer = Tracer(cluster)
    found = []
    for intent in intents:
        trace = trace_intent(intent, cluster, tracer)
        reason = contradiction(intent, trace)
        if reason is not None:
            found.append(Violation(intent, reason, trace))
    return found


def trace_intent(intent: Intent, cluster: Cluster, tracer: Tracer) -> Trace:
    """Return the trace of the packet `intent` speaks of.

    Raises:
        TraceError: the intent names nothing of the cluster (the intent and its line named).
    """
    try:
        src = cluster.resolve(intent.source, intent.family)
        dst = cluster.resolve(intent.to, intent.family or src.address.version)
    except TraceError as exc:
        raise TraceError(f"intent {intent.name} ({intent.where}): {exc}") from None
    return tracer.trace(src, dst, intent.port)


def contradiction(intent: Intent, trace: Trace) -> str | None:
    """Return how the trace contradicts the intent, or None."""
    wanted = "allowed" if intent.expect == "allow" else "denied"
    if (trace.outcome == "allowed") != (wanted == "allowed"):
        return f"expected {intent.expect}, the trace says {trace.outcome}"
    route = trace.route
    encapsulation = route.encapsulation if route is not None else None
    if intent.encapsulation not in (None, encapsulation) and route is not None:
        return (
            f"expected encapsulation {intent.encapsulation}, the path takes "
            f"{encapsulation} ({route.route})"
        )
    mtu = trace.path_mtu
    if intent.min_mtu is not None and mtu is not None and mtu < intent.min_mtu:
        return f"expected a path MTU of at least {intent.min_mtu}, it is {mtu}"
    return None
