"""The agent's commands: `calicc apply`, `calicc agent` and `calicc status`.

`register` adds them to the compiler's typer app, so compiler/cli.py stays thin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BundleOpt = Annotated[Path, typer.Option("--bundle", help="the node's bundle (holds node.json)")]
RootOpt = Annotated[
    Path, typer.Option("--root", help="prefix of every path the agent reads or writes")
]
StandinOpt = Annotated[
    bool,
    typer.Option(
        "--allow-tunnel-standin",
        help="tests/labs only: accept an existing tunl0 of another kind (no ipip module)",
    ),
]
NoAddrOpt = Annotated[
    bool,
    typer.Option(
        "--skip-address-check", help="do not compare the detected address with the bundle's"
    ),
]


def apply_cmd(
    bundle: BundleOpt,
    root: RootOpt = Path("/"),
    allow_tunnel_standin: StandinOpt = False,
    skip_address_check: NoAddrOpt = False,
) -> None:
    """Apply a node bundle once to this network namespace (idempotent)."""
    from agent.apply import Options, Reconciler
    from agent.bundle import load_bundle

    options = Options(
        root=root, allow_tunnel_standin=allow_tunnel_standin, check_address=not skip_address_check
    )
    result = Reconciler(options).reconcile(load_bundle(bundle))
    for line in result.lines():
        typer.echo(line, err=line.startswith("error:"))
    if not result.ok:
        raise typer.Exit(1)
    if not result.changes:
        typer.echo(f"{bundle}: node already in its desired state, nothing changed")


def register(app: typer.Typer) -> None:
    """Register the agent's commands on the calicc app."""
    app.command("apply")(apply_cmd)
