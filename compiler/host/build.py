"""Host protection in the build: load its policies with the inputs, attach it to the plan.

`load_host` runs with the other input checks (every problem at once); `attach_host` plans
which policies apply to which node and runs the lockout check (compiler/host/lockout.py), so a
lockout fails the build like any input error: file:line:field, exit 1, nothing written.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.host.load import LoadedHostPolicy, load_host_policies
from calicc.compiler.host.lockout import check_lockout
from calicc.compiler.host.plan import plan_host
from calicc.compiler.load import Source
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.plan import ClusterPlan


def load_host(
    spec: ClusterSpec, source: Source, files: tuple[Path, ...]
) -> tuple[tuple[LoadedHostPolicy, ...], list[Problem]]:
    """Return the host policies of the policy files, and the problems found."""
    try:
        policies = load_host_policies(files)
    except SpecError as exc:
        return (), list(exc.problems)
    if policies and spec.host_protection is None:
        first = policies[0]
        message = (
            "a GlobalNetworkPolicy polices node interfaces: add host_protection to the "
            "cluster file (its interfaces, failsafes and management networks)"
        )
        return policies, [first.problem(("kind",), message)]
    return policies, []


def attach_host(
    plan: ClusterPlan, policies: tuple[LoadedHostPolicy, ...], source: Source
) -> ClusterPlan:
    """Return the plan with host protection; raise SpecError when a policy would lock out."""
    host = plan_host(plan.spec, policies)
    if host is None:
        return plan
    planned = replace(plan, host=host)
    problems = check_lockout(planned, source)
    if problems:
        raise SpecError(problems)
    return planned
