"""`calicc lab up|check|down CLUSTER [--name NAME]`: typer commands over lab.up/check/down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calicc.lab.state import DEFAULT_BASE, lab_root, load_state

lab_app = typer.Typer(no_args_is_help=True, help="Run a compiled cluster as network namespaces.")

ClusterArg = Annotated[Path, typer.Argument(help="cluster.yaml", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", help="lab name (default: cluster name)")]
BaseOpt = Annotated[Path, typer.Option("--base", help="directory holding labs' files")]


def _progress(line: str) -> None:
    """Print a phase's progress line on stderr (stdout holds the results)."""
    typer.echo(line, err=True)


def _name(cluster: Path, name: str | None) -> str:
    if name is not None:
        return name
    from calicc.compiler.build import load_cluster

    return load_cluster(cluster).spec.name[:24].rstrip("-")


PodNodesOpt = Annotated[
    int | None,
    typer.Option(
        "--pod-nodes",
        help="give pods to only N nodes, spread; 0: every node "
        "(default: every node of a cluster up to 16 nodes, else 8)",
        show_default=False,
    ),
]

GobgpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--gobgp",
        help="play the external peer at this peer_ip with GoBGP, not a BIRD ToR (repeatable)",
        show_default=False,
    ),
]


@lab_app.command("up")
def up_cmd(
    cluster: ClusterArg,
    name: NameOpt = None,
    base: BaseOpt = DEFAULT_BASE,
    pod_nodes: PodNodesOpt = None,
    gobgp: GobgpOpt = None,
) -> None:
    """Build the cluster and bring it up as namespaces with real daemons and test pods."""
    from calicc.lab.up import lab_up

    lab = _name(cluster, name)
    state = lab_up(
        cluster,
        lab,
        lab_root(lab, base),
        typer.echo,
        pod_nodes,
        progress=_progress,
        gobgp_peers=gobgp or (),
    )
    typer.echo(f"lab {lab} is up ({state.root}); run `calicc lab check {cluster} --name {lab}`")


@lab_app.command("check")
def check_cmd(
    cluster: ClusterArg,
    name: NameOpt = None,
    base: BaseOpt = DEFAULT_BASE,
    as_json: Annotated[bool, typer.Option("--json", help="rows as JSON")] = False,
    skip_policy: Annotated[
        bool, typer.Option("--skip-policy", help="skip the policy walkthrough (re-applies)")
    ] = False,
) -> None:
    """Print the connectivity matrix; exit 1 on any mismatch."""
    from calicc.lab.check import failed, lab_check, table, to_json

    lab = _name(cluster, name)
    state = load_state(lab_root(lab, base))
    if state is None:
        typer.echo(f"error: lab {lab} is not up (no state under {lab_root(lab, base)})", err=True)
        raise typer.Exit(1)
    rows = lab_check(state, policy=not skip_policy, progress=_progress)
    typer.echo(to_json(rows) if as_json else table(rows))
    if failed(rows):
        raise typer.Exit(1)


@lab_app.command("apply")
def apply_cmd(cluster: ClusterArg, name: NameOpt = None, base: BaseOpt = DEFAULT_BASE) -> None:
    """Converge a running lab to its edited cluster file (nodes added or removed)."""
    from calicc.lab.reapply import lab_apply

    lab = _name(cluster, name)
    state = load_state(lab_root(lab, base))
    if state is None:
        typer.echo(f"error: lab {lab} is not up (no state under {lab_root(lab, base)})", err=True)
        raise typer.Exit(1)
    lab_apply(state, typer.echo, _progress)


@lab_app.command("down")
def down_cmd(cluster: ClusterArg, name: NameOpt = None, base: BaseOpt = DEFAULT_BASE) -> None:
    """Remove everything the lab made, also after a crash."""
    from calicc.lab.down import lab_down

    lab = _name(cluster, name)
    for line in lab_down(lab, lab_root(lab, base), _progress) or [f"lab {lab}: nothing to remove"]:
        typer.echo(line)
