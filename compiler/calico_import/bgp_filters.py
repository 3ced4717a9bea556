"""BGPFilters onto cluster.yaml's `bgp.filters`, and the peers' references to them.

Calico's BGPFilter rules (exportV4, importV4, exportV6, importV6) become calicc's rules key by
key: action, matchOperator, cidr, prefixLength, source, interface, communities, asPathPrefix and
the operations addCommunity and prependASPath. A filter using what calicc has no equivalent for
(the `priority` match or the `setPriority` operation, Calico's kernel route metric) is left out
whole, never half-converted: a filter that matched or changed less than it said would let
through, or keep out, other routes than it did. A BGPPeer naming a filter that is left out (or
was not exported) keeps its other filters; the report names the dropped reference.
"""

from __future__ import annotations

from typing import Any

from calicc.compiler.calico_import.fields import shown
from calicc.compiler.calico_import.report import UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource

DIRECTIONS = {"exportV4": "export_v4", "importV4": "import_v4", "exportV6": "export_v6",
              "importV6": "import_v6"}  # fmt: skip
RULE_KEYS = {
    "action": "action",
    "matchOperator": "match_operator",
    "cidr": "cidr",
    "prefixLength": "prefix_length",
    "source": "source",
    "interface": "interface",
    "communities": "communities",
    "asPathPrefix": "as_path_prefix",
}
OPERATIONS = {"addCommunity": "add_community", "prependASPath": "prepend_as_path"}
UNSUPPORTED = {
    "priority": "calicc's filters do not match a route's kernel metric (Calico's priority)",
    "setPriority": "calicc's filters do not set a route's kernel metric (Calico's setPriority)",
}


def read_filter(res: Resource, notes: list[Note]) -> dict[str, Any] | None:
    """Return the filter's `bgp.filters` entry, or None (left out and reported)."""
    entry: dict[str, Any] = {"name": res.name}
    for key, value in sorted(res.spec.items()):
        if key not in DIRECTIONS:
            notes.append(
                _left_out(res, f"spec.{key}", f"calicc has no equivalent (was {shown(value)})")
            )
            return None
        rules = []
        for index, rule in enumerate(value if isinstance(value, list) else [value]):
            converted = _rule(rule, res, f"spec.{key}[{index}]", notes)
            if converted is None:
                return None
            rules.append(converted)
        if rules:
            entry[DIRECTIONS[key]] = rules
    return entry


def _rule(rule: object, res: Resource, where: str, notes: list[Note]) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        return rule  # type: ignore[return-value]  # the model refuses it, blamed on the resource
    if rule.get("prefixLength") and rule.get("matchOperator") in ("Equal", "NotEqual"):
        why = (
            f"{rule['matchOperator']} with a prefixLength: Calico renders net = [ set ], which "
            "BIRD never finds equal, so this rule never (NotEqual: always) matched; calicc refuses "
            f"the combination (was {shown(rule['prefixLength'])})"
        )
        notes.append(_left_out(res, f"{where}.prefixLength", why))
        return None
    converted: dict[str, Any] = {}
    for key, value in rule.items():
        if key == "operations":
            ops = [_operation(op, res, f"{where}.operations", notes) for op in value or []]
            if any(op is None for op in ops):
                return None
            if ops:
                converted["operations"] = ops
        elif key in RULE_KEYS:
            converted[RULE_KEYS[key]] = value
        else:
            why = UNSUPPORTED.get(key, "calicc has no equivalent")
            notes.append(_left_out(res, f"{where}.{key}", f"{why} (was {shown(value)})"))
            return None
    return converted


def _operation(op: object, res: Resource, where: str, notes: list[Note]) -> dict[str, Any] | None:
    if not isinstance(op, dict):
        return op  # type: ignore[return-value]  # the model refuses it
    converted: dict[str, Any] = {}
    for key, value in op.items():
        if key not in OPERATIONS:
            why = UNSUPPORTED.get(key, "calicc has no equivalent")
            notes.append(_left_out(res, f"{where}.{key}", f"{why} (was {shown(value)})"))
            return None
        converted[OPERATIONS[key]] = value
    return converted


def _left_out(res: Resource, field: str, why: str) -> Note:
    return Note(UNMAPPED, res.kind, res.name, field, f"{why}: the filter is left out")


def peer_filters(res: Resource, names: list[str], known: set[str], notes: list[Note]) -> list[str]:
    """Return the filters a peer names that were imported; note each dropped reference."""
    kept = [n for n in names if n in known]
    for name in names:
        if name not in known:
            why = f"BGPFilter {name} was not imported (see its own line, or export it): not applied"
            notes.append(Note(UNMAPPED, res.kind, res.name, "spec.filters", why))
    return kept
