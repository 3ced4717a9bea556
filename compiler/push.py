"""calicc push: roll the rendered bundles out with Ansible, through ansible-runner's Python API.

Route reflectors go first, then the other nodes in batches; a batch with a failed or unreachable
host stops the rollout. Each batch is one `ansible_runner.run()` in its own private data dir.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.resources
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ansible_runner

from calicc.compiler.build import Inputs, build
from calicc.compiler.errors import CaliccError
from calicc.compiler.inventory import build_inventory, dump_inventory, route_reflectors

PLAYBOOKS = Path(str(importlib.resources.files("calicc.playbooks")))  # package data
PLAYBOOK = "node.yml"
Echo = Callable[[str], None]
EVENT_LABELS = {
    "runner_on_failed": "FAILED",
    "runner_on_unreachable": "UNREACHABLE",
    "runner_on_skipped": "skipped",
}


class PushError(CaliccError):
    """A push cannot start (stale rendered tree, unknown hosts, bad options)."""


@dataclass(frozen=True)
class HostResult:
    """One host's task counts, as in Ansible's play recap."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    @property
    def good(self) -> bool:
        """Return whether the host neither failed nor was unreachable."""
        return not (self.failed or self.unreachable)


@dataclass
class PushReport:
    """What a push did: batches run, per-host results and hosts left out when it stopped."""

    batches: list[list[str]]
    results: dict[str, HostResult] = field(default_factory=dict)
    not_pushed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether every planned host was pushed without failure."""
        return not self.not_pushed and all(r.good for r in self.results.values())


@dataclass(frozen=True)
class PushSettings:
    """Where the bundles, inventory and playbooks are, and how to roll out."""

    rendered: Path
    inventory: Path | None = None  # None: generated from the cluster file
    playbooks: Path = PLAYBOOKS
    check: bool = False
    diff: bool = False
    batch_size: int = 0  # 0: all non-reflector nodes in one batch
    extravars: Mapping[str, object] = field(default_factory=dict)


def select_nodes(nodes: Sequence[str], limit: str | None) -> list[str]:
    """Return the nodes matched by `limit` (comma-separated names or globs), sorted.

    Raises:
        PushError: a limit pattern matches no node.
    """
    if not limit:
        return sorted(nodes)
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    unmatched = [p for p in patterns if not fnmatch.filter(nodes, p)]
    if unmatched:
        raise PushError(
            f"--limit {', '.join(unmatched)} matches no node (nodes: {', '.join(sorted(nodes))})"
        )
    return sorted({n for p in patterns for n in fnmatch.filter(nodes, p)})


def plan_batches(nodes: Sequence[str], reflectors: Sequence[str], size: int) -> list[list[str]]:
    """Return the rollout order: route reflectors together, then the rest `size` at a time.

    Examples:
        >>> plan_batches(["a", "b", "c", "rr"], ["rr"], 2)
        [['rr'], ['a', 'b'], ['c']]
    """
    first = sorted(n for n in nodes if n in set(reflectors))
    rest = sorted(n for n in nodes if n not in set(reflectors))
    step = size if size > 0 else max(len(rest), 1)
    batches = [first] if first else []
    return batches + [rest[i : i + step] for i in range(0, len(rest), step)]


def host_results(
    stats: Mapping[str, Mapping[str, int]] | None, hosts: Sequence[str]
) -> dict[str, HostResult]:
    """Turn ansible-runner's `stats` into per-host results; a host with no stats failed."""
    stats = stats or {}

    def count(key: str, host: str) -> int:
        return int(stats.get(key, {}).get(host, 0))

    return {
        host: HostResult(
            host=host,
            ok=count("ok", host),
            changed=count("changed", host),
            failed=count("failures", host) + (0 if _seen(stats, host) else 1),
            unreachable=count("dark", host),
            skipped=count("skipped", host),
        )
        for host in hosts
    }


def _seen(stats: Mapping[str, Mapping[str, int]], host: str) -> bool:
    return any(host in per_host for per_host in stats.values())


class Progress:
    """ansible-runner event handler printing one line per host and task result (and diffs)."""

    def __init__(self, echo: Echo, batch: int, show_diff: bool = False) -> None:
        self.echo = echo
        self.batch = batch
        self.show_diff = show_diff

    def __call__(self, event: Mapping[str, Any]) -> bool:
        """Print a result event; return True so ansible-runner keeps every event."""
        name = event.get("event", "")
        data = event.get("event_data", {})
        res = data.get("res", {})
        if self.show_diff and name in {"runner_on_ok", "runner_item_on_ok"} and res.get("changed"):
            for line in diff_lines(res.get("diff")):
                self.echo(line)
        if name == "runner_on_ok":
            label = "changed" if res.get("changed") else "ok"
        elif name in EVENT_LABELS:
            label = EVENT_LABELS[name]
        else:
            return True
        line = f"[{self.batch}] {data.get('host', '?')}: {label}: {data.get('task', '')}"
        if label in {"FAILED", "UNREACHABLE"}:
            line += f" ({_message(res)})"
        self.echo(line)
        return True


def diff_lines(diff: object) -> list[str]:
    """Return a module's --diff result (one dict or a list of them) as unified diff lines."""
    lines: list[str] = []
    for part in diff if isinstance(diff, list) else [diff]:
        if not isinstance(part, Mapping):
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if isinstance(before, str) and isinstance(after, str):
            lines += difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                str(part.get("before_header", "before")),
                str(part.get("after_header", "after")),
                lineterm="",
            )
    return lines


def _message(res: Mapping[str, Any]) -> str:
    bad = [r for r in res.get("results", []) if r.get("failed") or r.get("unreachable")]
    if bad:
        res = bad[0]
    text = res.get("msg") or res.get("stderr") or ""
    return " ".join(str(text).split())[:300]


def ensure_ansible_on_path() -> None:
    """Put this interpreter's bin dir (where pip put ansible-playbook) first on PATH.

    ansible-runner looks ansible-playbook up on the calling process's PATH, and `calicc` may
    run from a virtualenv that is not activated.
    """
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = f"{bindir}{os.pathsep}{path}"


def runner_env() -> dict[str, str]:
    """Return the environment ansible-playbook runs with (no colours, no retry files)."""
    ensure_ansible_on_path()
    return {
        "PATH": os.environ["PATH"],
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "True",
    }


def run_batch(
    settings: PushSettings, hosts: Sequence[str], index: int, echo: Echo
) -> dict[str, HostResult]:
    """Run the playbook on one batch of hosts in a fresh private data dir."""
    extravars = {
        **settings.extravars,
        "calicc_rendered_dir": str(settings.rendered.resolve()),
        "calicc_targets": ",".join(hosts),
    }
    flags = [f for f, on in (("--check", settings.check), ("--diff", settings.diff)) if on]
    with tempfile.TemporaryDirectory(prefix="calicc-push-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(settings.playbooks.resolve()),
            playbook=PLAYBOOK,
            inventory=str(inventory_path(settings).resolve()),
            extravars=extravars,
            cmdline=" ".join(flags) or None,
            envvars=runner_env(),
            event_handler=Progress(echo, index, settings.diff),
            quiet=True,
            suppress_env_files=True,
        )
        return host_results(runner.stats, hosts)


def push(settings: PushSettings, batches: list[list[str]], echo: Echo) -> PushReport:
    """Run the batches in order, stopping after the first batch with a bad host."""
    report = PushReport(batches=batches)
    for index, batch in enumerate(batches, start=1):
        echo(f"batch {index}/{len(batches)}: {', '.join(batch)}")
        report.results.update(run_batch(settings, batch, index, echo))
        if not all(report.results[h].good for h in batch):
            report.not_pushed = [h for later in batches[index:] for h in later]
            break
    return report


def format_summary(report: PushReport) -> str:
    """Return the per-host summary table, and which hosts a stopped rollout left out."""
    rows = ["host                      ok  changed  failed  unreachable  skipped"]
    for host in sorted(report.results):
        r = report.results[host]
        rows.append(
            f"{host:<24} {r.ok:>3} {r.changed:>8} {r.failed:>7} {r.unreachable:>12} {r.skipped:>8}"
        )
    if report.not_pushed:
        rows.append(f"rollout stopped: not pushed: {', '.join(report.not_pushed)}")
    return "\n".join(rows)


def inventory_names(path: Path) -> set[str]:
    """Return every host of an inventory in any format Ansible reads (via ansible-inventory)."""
    with tempfile.TemporaryDirectory(prefix="calicc-inventory-") as private:
        out, err = ansible_runner.get_inventory(
            action="list",
            inventories=[str(path.resolve())],
            response_format="json",
            private_data_dir=private,
            envvars=runner_env(),
            quiet=True,
        )
    if not isinstance(out, dict):
        raise PushError(f"{path}: Ansible cannot read this inventory: {str(err).strip()}")
    names = set(out.get("_meta", {}).get("hostvars", {}))
    for group in out.values():
        if isinstance(group, dict):
            names.update(group.get("hosts", []))
    return names


def check_rendered(inputs: Inputs, rendered: Path) -> None:
    """Refuse to push a rendered tree that is not what `calicc build --frozen` produces."""
    report = build(inputs, rendered, frozen=True, check=True)
    if report.changed:
        stale = [*report.written, *report.removed]
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""  # noqa: PLR2004
        raise PushError(
            f"{rendered} is not what the cluster file compiles to ({', '.join(stale[:5])}{more}): "
            "run `calicc build` and commit the result before pushing"
        )


def plan_push(inputs: Inputs, settings: PushSettings, limit: str | None) -> list[list[str]]:
    """Check the rendered tree and the inventory, and return the batches to run."""
    check_rendered(inputs, settings.rendered)
    nodes = select_nodes([n.name for n in inputs.spec.nodes], limit)
    missing = sorted(set(nodes) - inventory_names(inventory_path(settings)))
    if missing:
        raise PushError(
            f"{settings.inventory} has no host named {', '.join(missing)}: inventory hosts must "
            "be named after the nodes (see `calicc inventory`), or leave them out with --limit"
        )
    return plan_batches(nodes, route_reflectors(inputs.spec), settings.batch_size)


def inventory_path(settings: PushSettings) -> Path:
    """Return the inventory of a push (run_push fills it in when it was not given)."""
    if settings.inventory is None:
        raise PushError("no inventory: give -i INVENTORY or let run_push generate one")
    return settings.inventory


def run_push(inputs: Inputs, settings: PushSettings, limit: str | None, echo: Echo) -> PushReport:
    """Push the cluster, with an inventory generated from the cluster file unless one is given.

    Args:
        inputs: the validated cluster.
        settings: rendered tree, inventory and rollout options.
        limit: comma-separated node names or globs, as Ansible's --limit.
        echo: where progress lines go.
    """
    with tempfile.TemporaryDirectory(prefix="calicc-push-inv-") as tmp:
        if settings.inventory is None:
            generated = Path(tmp) / "inventory.yaml"
            generated.write_text(dump_inventory(build_inventory(inputs.spec)), encoding="utf-8")
            settings = replace(settings, inventory=generated)
        batches = plan_push(inputs, settings, limit)
        return push(settings, batches, echo)
