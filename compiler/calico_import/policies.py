"""Kubernetes NetworkPolicies from `kubectl get networkpolicies -A -o yaml`, kept as written.

kubectl adds server-side metadata (uid, resourceVersion, managedFields, the last-applied
annotation) and `status`; only apiVersion, kind, metadata name, namespace and labels, and spec
are kept, which is what calicc reads. Each policy is checked as `calicc build` checks it: one
calicc refuses is left out of the policies file and reported with the build's own message, since
a policy file calicc refuses would stop every build.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from calicc.compiler.calico_import.report import UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.policy.check import check_policy
from calicc.compiler.policy.model import NetworkPolicy
from calicc.compiler.spec_errors import problems_from

POLICY_FILE = "policies/networkpolicies.yaml"
KEPT_META = ("name", "namespace", "labels")
LEFT_OUT = "left out (its pods are not policed by calicc until it is fixed and added)"


def _cleaned(res: Resource) -> dict[str, Any]:
    meta = res.data["metadata"]
    return {
        "apiVersion": res.api_version,
        "kind": res.kind,
        "metadata": {key: meta[key] for key in KEPT_META if meta.get(key) not in (None, {})},
        "spec": res.data.get("spec"),
    }


def _problems(res: Resource, data: dict[str, Any]) -> list[Problem]:
    """Return what `calicc build` would refuse in the policy, located in the exported file."""
    loc = res.loc
    sub = Source(
        path=res.source.path,
        data=data,
        lines={k[len(loc) :]: v for k, v in res.source.lines.items() if k[: len(loc)] == loc},
    )
    try:
        policy = NetworkPolicy.model_validate(data)
    except ValidationError as exc:
        return problems_from(exc, sub, NetworkPolicy)
    return list(check_policy(policy, sub.problem))


def _key(res: Resource) -> tuple[str, str]:
    return str(res.data["metadata"].get("namespace", "default")), res.name


def policy_file(resources: Iterable[Resource]) -> tuple[str | None, int, list[Note]]:
    """Return the policies file's text (None: no policy), how many it holds, and the notes."""
    kept: list[dict[str, Any]] = []
    notes: list[Note] = []
    for res in sorted(resources, key=_key):
        data = _cleaned(res)
        problems = _problems(res, data)
        if problems:
            name = "/".join(_key(res))
            notes += [
                Note(
                    UNMAPPED,
                    res.kind,
                    name,
                    p.field,
                    f"{p.message} ({p.file}:{p.line}): {LEFT_OUT}",
                )
                for p in problems
            ]
            continue
        kept.append(data)
    if not kept:
        return None, 0, notes
    text = "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in kept)
    header = "# Imported by `calicc import` from kubectl's NetworkPolicy export.\n"
    return header + text, len(kept), notes
