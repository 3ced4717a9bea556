"""Kubernetes label selectors in canonical plain-data form, and their evaluation.

The canonical form is what node.json carries (`PolicyBinding.pod_selector`, `Ipset.selector`),
so the node side (CNI plugin, agent) evaluates exactly what the compiler hashed
(contract/selectors.py):
`{"matchLabels": {k: v, ...}, "matchExpressions": [{"key", "operator", "values"}, ...]}` with
keys sorted, values sorted and expressions sorted. `{}` parts are kept, so `{}` selects all.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from calicc.compiler.policy.model import LabelSelector

SelectorDict = dict[str, Any]


def canonical(selector: LabelSelector) -> SelectorDict:
    """Return the canonical plain-data form of a selector.

    Examples:
        >>> from compiler.policy.model import LabelSelector
        >>> canonical(LabelSelector(matchLabels={"b": "2", "a": "1"}))
        {'matchExpressions': [], 'matchLabels': {'a': '1', 'b': '2'}}
    """
    expressions = sorted(
        (
            {"key": e.key, "operator": e.operator, "values": sorted(set(e.values))}
            for e in selector.matchExpressions
        ),
        key=lambda e: json.dumps(e, sort_keys=True),
    )
    return {
        "matchExpressions": expressions,
        "matchLabels": dict(sorted(selector.matchLabels.items())),
    }


def stable_id(data: object, length: int) -> str:
    """Return a stable base64url SHA-224 id of `data`'s canonical JSON, cut to `length`.

    The same scheme as Calico's `hash.MakeUniqueID`: independent of dict order and of
    PYTHONHASHSEED.
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha224(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]


_OPERATOR_TEXT = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def describe(selector: Mapping[str, Any]) -> str:
    """Return a short human reading of a canonical selector, for comments.

    Examples:
        >>> describe({"matchLabels": {"app": "web"},
        ...           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]})
        'app=web,tier in (a)'
        >>> describe({})
        'all'
    """
    parts = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for e in selector.get("matchExpressions", []):
        values = f" ({','.join(e.get('values', []))})" if e.get("values") else ""
        parts.append(f"{e['key']} {_OPERATOR_TEXT.get(e['operator'], e['operator'])}{values}")
    return ",".join(parts) or "all"
