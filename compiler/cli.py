"""The compiler's commands: build, validate, convert, import, schema, inventory, push, diff.

A thin typer app over importable functions. calicc/cli.py composes it with the agent's and
the lab's commands; every import of the compiler's machinery sits inside a command body, so
loading this module (for `calicc build`, say) costs no more than typer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from calicc.compiler.build import Inputs
    from calicc.compiler.emit import EmitReport

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="calicc's compiler: cluster.yaml to node bundles.",
)

ClusterArg = Annotated[
    Path | None, typer.Argument(help="cluster.yaml (or use --icp/--hosts)", show_default=False)
]
IcpOpt = Annotated[Path | None, typer.Option("--icp", help="IBM Cloud Private config.yaml")]
HostsOpt = Annotated[Path | None, typer.Option("--hosts", help="ICP Ansible hosts inventory")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def load_inputs(cluster: Path | None, icp: Path | None, hosts: Path | None) -> Inputs:
    """Load either a cluster.yaml or an ICP config.yaml with its hosts file."""
    from calicc.compiler.build import load_cluster
    from calicc.compiler.icp import load_icp

    if icp is not None:
        if hosts is None:
            raise fail("--icp needs --hosts (the ICP inventory that lists the nodes)", 2)
        return load_icp(icp, hosts)
    if cluster is None:
        raise fail("give a cluster.yaml, or --icp config.yaml --hosts hosts", 2)
    return load_cluster(cluster)


@app.command("build")
def build_cmd(
    cluster: ClusterArg = None,
    icp: IcpOpt = None,
    hosts: HostsOpt = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="output dir")] = None,
    frozen: Annotated[bool, typer.Option(help="fail if the lock file would change")] = False,
    check: Annotated[bool, typer.Option(help="write nothing; exit 1 if anything differs")] = False,
    reallocate: Annotated[
        bool,
        typer.Option(
            help="let blocks that no longer fit their pool move to new blocks (pods on those "
            "nodes hold the old addresses: drain them first)"
        ),
    ] = False,
) -> None:
    """Compile the cluster into per-node artifacts (rendered/ beside the cluster file).

    A build with nothing to do (same inputs, lock, tree and calicc as the last build of this
    command) is recognised without loading the models; see compiler/uptodate.py.
    """
    from calicc.compiler.emit import EmitReport
    from calicc.compiler.uptodate import Command, find_noop, record

    command = Command(cluster, out) if cluster is not None and icp is None else None
    noop = find_noop(command) if command is not None else None
    if command is not None and noop is not None:
        show_build(command.target, EmitReport(), noop, check)
        return
    inputs = load_inputs(cluster, icp, hosts)
    target = out if out is not None else inputs.base_dir / "rendered"
    report, warnings = run_build(inputs, target, frozen=frozen, check=check, reallocate=reallocate)
    if command is not None and not has_snippets(inputs) and not (check and report.changed):
        record(command, inputs.files, inputs.spec.policies, inputs.lock_path, warnings)
    show_build(target, report, warnings, check)


def noop_build(args: list[str]) -> bool:
    """Finish `calicc build ARGS` when the build has nothing to do; return whether it did.

    click's parser reads ARGS as build_cmd declares them, but the values skip typer's
    conversion, which loads pydantic (most of a no-op's time). Anything but a cluster file,
    -o and the flags (--icp, --help, a usage error) is left to build_cmd, as is every miss.
    """
    from calicc.compiler.emit import EmitReport
    from calicc.compiler.uptodate import Command, find_noop

    command = typer.main.get_group(app).commands["build"]
    try:
        opts, rest, _ = command.make_parser(command.context_class(command)).parse_args(args)
    except typer.TyperException:  # click's usage errors: build_cmd reports them
        return False
    if rest or not opts.get("cluster") or any(opts.get(k) for k in ("icp", "hosts", "help")):
        return False
    out = Path(opts["out"]) if opts.get("out") is not None else None
    build = Command(Path(opts["cluster"]), out)
    warnings = find_noop(build)
    if warnings is None:
        return False
    show_build(build.target, EmitReport(), warnings, check=bool(opts.get("check")))
    return True


def run_build(
    inputs: Inputs, target: Path, *, frozen: bool, check: bool, reallocate: bool
) -> tuple[EmitReport, tuple[str, ...]]:
    """Plan once, refuse bad bird_snippets, write; return the report and the plan's warnings."""
    from calicc.compiler.build import plan_locked, write_planned
    from calicc.compiler.errors import SpecError
    from calicc.compiler.snippets import check_snippets

    plan, lock_file = plan_locked(inputs, reallocate)
    if has_snippets(inputs):  # stock BIRD must accept them before anything is written
        problems = check_snippets(inputs.source, plan)
        if problems:
            raise SpecError(problems)
    verify = None
    if inputs.spec.intents is not None:  # traced on the new tree before anything is written
        from calicc.trace.build_check import intents_verifier

        verify = intents_verifier(inputs.base_dir, inputs.spec.pods, inputs.spec.intents)
    report = write_planned(
        inputs, target, plan, lock_file, frozen=frozen, check=check, verify=verify
    )
    return report, plan.warnings


def has_snippets(inputs: Inputs) -> bool:
    """Return whether the cluster holds bird_snippets (checked by a real BIRD when present)."""
    spec = inputs.spec
    return spec.bird_snippets is not None or any(n.bird_snippets is not None for n in spec.nodes)


def show_build(target: Path, report: EmitReport, warnings: tuple[str, ...], check: bool) -> None:
    """Print the warnings and what changed; exit 1 when `check` found a difference."""
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    verb = "would change" if check else "changed"
    for rel in report.written:
        typer.echo(f"{verb}: {rel}")
    for rel in report.removed:
        typer.echo(f"{'would remove' if check else 'removed'}: {rel}")
    if not report.changed:
        typer.echo(f"{target}: up to date, nothing written")
    if check and report.changed:
        raise typer.Exit(1)


@app.command("validate")
def validate_cmd(cluster: ClusterArg = None, icp: IcpOpt = None, hosts: HostsOpt = None) -> None:
    """Run every check and the real tools' syntax checks, writing nothing."""
    from calicc.compiler.build import compile_cluster
    from calicc.compiler.snippets import tool_problems

    inputs = load_inputs(cluster, icp, hosts)
    compiled = compile_cluster(inputs)
    failures = tool_problems(inputs.source, compiled.plan, compiled.files)
    for line in failures:
        typer.echo(line, err=True)
    if failures:
        raise typer.Exit(1)
    typer.echo(f"{inputs.source.path}: valid ({len(compiled.plan.nodes)} nodes)")


@app.command("convert")
def convert_cmd(
    icp: Annotated[Path, typer.Option("--icp", help="IBM Cloud Private config.yaml")],
    hosts: Annotated[Path, typer.Option("--hosts", help="ICP Ansible hosts inventory")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="write here, not stdout")] = None,
) -> None:
    """Write the cluster.yaml equivalent of an ICP config.yaml and hosts (calicc's own keys)."""
    from calicc.compiler.emit import write_atomic
    from calicc.compiler.icp import icp_cluster_yaml

    text = icp_cluster_yaml(icp, hosts)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        typer.echo(f"written: {out}")


@app.command("import")
def import_cmd(
    calico: Annotated[
        list[Path],
        typer.Argument(
            help="calicoctl/kubectl `get ... -o yaml` output: IPPools, BGPConfigurations, "
            "BGPPeers, Nodes, IPAMBlocks, BlockAffinities",
            metavar="EXPORT.yaml",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="directory to write into")],
    policies: Annotated[
        list[Path] | None,
        typer.Option("--policies", help="`kubectl get networkpolicies -A -o yaml` output"),
    ] = None,
    name: Annotated[str, typer.Option(help="the cluster's name in cluster.yaml")] = "calico",
    force: Annotated[bool, typer.Option(help="overwrite files already in the directory")] = False,
) -> None:
    """Write cluster.yaml, policies and lock from a running Calico's exported resources.

    Every node keeps its blocks (no running pod changes address); what could not be mapped
    is printed and written to import-report.md. Nothing is written on any error.
    """
    from calicc.compiler.calico_import.run import import_calico, write_imported

    imported = import_calico([*calico, *(policies or [])], name)
    for note in imported.notes:
        typer.echo(str(note))
    for line in imported.summary:
        typer.echo(f"imported: {line}")
    for path in write_imported(imported, out, force=force):
        typer.echo(f"written: {path}")


@app.command("schema")
def schema_cmd(
    out: Annotated[Path, typer.Option("-o", "--out", help="schemas directory")] = Path("schemas"),
    docs: Annotated[Path, typer.Option("--docs", help="reference pages directory")] = Path(
        "docs/reference"
    ),
    check: Annotated[bool, typer.Option(help="exit 1 if the files are not current")] = False,
) -> None:
    """Write the JSON Schemas generated from the models, and their reference pages."""
    from calicc.compiler.schema import write_schemas

    stale = write_schemas(out, docs, check=check)
    for path in stale:
        typer.echo(f"{'stale' if check else 'written'}: {path}")
    if check and stale:
        raise typer.Exit(1)


@app.command("inventory")
def inventory_cmd(
    cluster: Annotated[Path, typer.Argument(help="cluster.yaml", show_default=False)],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="file (default stdout)")] = None,
) -> None:
    """Write an Ansible inventory (YAML) of the cluster's nodes, grouped by role and label."""
    from calicc.compiler.build import load_cluster
    from calicc.compiler.emit import write_atomic
    from calicc.compiler.inventory import build_inventory, dump_inventory

    text = dump_inventory(build_inventory(load_cluster(cluster).spec))
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        typer.echo(f"written: {out}")


@app.command("push")
def push_cmd(
    cluster: Annotated[Path, typer.Argument(help="cluster.yaml", show_default=False)],
    inventory: Annotated[
        Path | None, typer.Option("-i", "--inventory", help="default: from the cluster file")
    ] = None,
    limit: Annotated[str | None, typer.Option(help="nodes (names or globs, commas)")] = None,
    check: Annotated[bool, typer.Option(help="Ansible check mode: change nothing")] = False,
    diff: Annotated[bool, typer.Option(help="show the changes to files")] = False,
    batch_size: Annotated[int, typer.Option(help="nodes per batch after the RRs (0: all)")] = 0,
    rendered: Annotated[Path | None, typer.Option(help="default: rendered/ beside it")] = None,
) -> None:
    """Push the rendered bundles with Ansible: route reflectors first, then batches."""
    from calicc.compiler.build import load_cluster
    from calicc.compiler.push import PushSettings, format_summary, run_push

    inputs = load_cluster(cluster)
    settings = PushSettings(
        rendered=rendered or inputs.base_dir / "rendered",
        inventory=inventory,
        check=check,
        diff=diff,
        batch_size=batch_size,
    )
    report = run_push(inputs, settings, limit, typer.echo)
    typer.echo(format_summary(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("diff")
def diff_cmd(
    from_rev: Annotated[str, typer.Option("--from", help="old git revision")] = "HEAD",
    to_rev: Annotated[
        str | None, typer.Option("--to", help="new git revision (default: the working tree)")
    ] = None,
    repo: Annotated[Path, typer.Option(help="a directory inside the git repository")] = Path(),
    path: Annotated[str, typer.Option(help="only rendered trees under this path")] = "",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="file (default stdout)")] = None,
) -> None:
    """Summarise a change to the rendered trees, per node, and to reachability (for a PR)."""
    from calicc.compiler.diff import diff_command
    from calicc.compiler.emit import write_atomic

    text = diff_command(repo, from_rev, to_rev, path.strip("/"))
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
