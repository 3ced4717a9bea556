"""calicc push: roll the rendered bundles out with Ansible, through ansible-runner's Python API.

Route reflectors go first, then the other nodes in batches; a batch with a failed or unreachable
host stops the rollout. Each batch is one `ansible_runner.run()` in its own private data dir.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import ansible_runner
from ansible_runner.exceptions import AnsibleRunnerException

from calicc.compiler.build import Inputs, build
from calicc.compiler.errors import CaliccError
from calicc.compiler.inventory import build_inventory, dump_inventory, route_reflectors
from calicc.compiler.push_events import Echo, Progress, run_error

PLAYBOOKS = Path(str(importlib.resources.files("calicc.playbooks")))  # package data
PLAYBOOK = "node.yml"


class PushError(CaliccError):
    """A push cannot start (stale rendered tree, unknown hosts, bad options) or run at all."""


class RunnerError(PushError):
    """ansible-runner could not run the playbook, or its run reached no host."""


@dataclass(frozen=True)
class HostResult:
    """One host's task counts, as in Ansible's play recap, and why it failed or was unreachable."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    reason: str = ""

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
    stats: Mapping[str, Mapping[str, int]] | None,
    hosts: Sequence[str],
    reasons: Mapping[str, str] | None = None,
    unreached: str = "the run never reached it",
) -> dict[str, HostResult]:
    """Turn ansible-runner's `stats` into per-host results; a host with no stats failed.

    A failed or unreachable host's reason is its entry in `reasons` (from the task events), or
    `unreached` when the run never reached it.
    """
    stats, reasons = stats or {}, reasons or {}

    def count(key: str, host: str) -> int:
        return int(stats.get(key, {}).get(host, 0))

    results = {}
    for host in hosts:
        seen = _seen(stats, host)
        result = HostResult(
            host=host,
            ok=count("ok", host),
            changed=count("changed", host),
            failed=count("failures", host) + (0 if seen else 1),
            unreachable=count("dark", host),
            skipped=count("skipped", host),
        )
        if not result.good:
            why = reasons.get(host) or (unreached if not seen else "Ansible gave no message")
            result = replace(result, reason=why)
        results[host] = result
    return results


def _seen(stats: Mapping[str, Mapping[str, int]], host: str) -> bool:
    return any(host in per_host for per_host in stats.values())


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


@contextmanager
def private_data_dir() -> Iterator[Path]:
    """Yield a fresh private data dir for one ansible-runner run; it is removed after."""
    with tempfile.TemporaryDirectory(prefix="calicc-push-") as private:
        yield Path(private)


def run_batch(
    settings: PushSettings, hosts: Sequence[str], index: int, echo: Echo
) -> dict[str, HostResult]:
    """Run the playbook on one batch of hosts in a fresh private data dir.

    Raises:
        RunnerError: ansible-runner could not start the run, or the run reached no host of the
            batch (playbook missing, inventory unreadable, ansible-playbook not found).
    """
    extravars = {
        **settings.extravars,
        "calicc_rendered_dir": str(settings.rendered.resolve()),
        "calicc_targets": ",".join(hosts),
    }
    flags = [f for f, on in (("--check", settings.check), ("--diff", settings.diff)) if on]
    progress = Progress(echo, index, settings.diff)
    try:
        with private_data_dir() as private:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(settings.playbooks.resolve()),
                playbook=PLAYBOOK,
                inventory=str(inventory_path(settings).resolve()),
                extravars=extravars,
                cmdline=" ".join(flags) or None,
                envvars=runner_env(),
                event_handler=progress,
                quiet=True,
                suppress_env_files=True,
            )
            stats = runner.stats  # read from the run's artifacts, inside the private data dir
    except (AnsibleRunnerException, OSError, ValueError) as exc:
        raise RunnerError(
            f"ansible-runner could not run {PLAYBOOK} ({type(exc).__name__}): {exc}"
        ) from exc
    said = run_error(progress.output, runner.status, runner.rc)
    if not any(_seen(stats or {}, host) for host in hosts):
        raise RunnerError(f"ansible-runner reached no host: {said}")
    unreached = f"the run never reached it: no play matched it in {settings.inventory}"
    if progress.output:
        unreached += f"; ansible-playbook said: {said}"
    return host_results(stats, hosts, progress.reasons, unreached)


def push(settings: PushSettings, batches: list[list[str]], echo: Echo) -> PushReport:
    """Run the batches in order, stopping after the first batch with a bad host.

    Raises:
        RunnerError: a batch's run reached none of its hosts; the message names the batch and
            the hosts earlier batches pushed.
    """
    report = PushReport(batches=batches)
    for index, batch in enumerate(batches, start=1):
        echo(f"batch {index}/{len(batches)}: {', '.join(batch)}")
        try:
            report.results.update(run_batch(settings, batch, index, echo))
        except RunnerError as exc:
            done = f" (pushed before it: {', '.join(sorted(report.results))})"
            raise RunnerError(
                f"batch {index}/{len(batches)}: {exc}{done if report.results else ''}"
            ) from exc
        if not all(report.results[h].good for h in batch):
            report.not_pushed = [h for later in batches[index:] for h in later]
            break
    return report


def format_summary(report: PushReport) -> str:
    """Return the per-host summary table, and which hosts a stopped rollout left out.

    A failed or unreachable host's row ends with why: its failing task and Ansible's message.
    """
    rows = ["host                      ok  changed  failed  unreachable  skipped"]
    for host in sorted(report.results):
        r = report.results[host]
        counts = f"{r.ok:>3} {r.changed:>8} {r.failed:>7} {r.unreachable:>12} {r.skipped:>8}"
        row = f"{host:<24} {counts}"
        rows.append(f"{row}  {r.reason}" if r.reason else row)
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
