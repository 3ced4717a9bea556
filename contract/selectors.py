"""Evaluation of Kubernetes label selectors in the canonical plain-data form node.json carries.

The compiler writes selectors canonically (`compiler/policy/selectors.py`: `PolicyBinding.
pod_selector`, `Ipset.selector`); the node side (CNI plugin, agent) evaluates exactly that:
`{"matchLabels": {k: v, ...}, "matchExpressions": [{"key", "operator", "values"}, ...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Return whether `labels` satisfy a canonical selector (Kubernetes semantics).

    Every matchLabels pair and every expression must hold; NotIn and DoesNotExist also match
    when the key is absent. The empty selector matches every label set.

    Examples:
        >>> matches({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "1"})
        True
        >>> matches({"matchExpressions": [{"key": "app", "operator": "NotIn",
        ...          "values": ["web"]}]}, {})
        True
    """
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions", []))
