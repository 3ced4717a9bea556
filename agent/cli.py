"""The agent's commands: `calicc apply`, `calicc agent` and `calicc status`.

calicc/cli.py composes `app` with the compiler's and the lab's commands, importing this
module only when one of these commands runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from calicc.agent import AgentError

if TYPE_CHECKING:
    from calicc.agent.apply import ApplyResult, Options

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

KubeOpt = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="list the cluster's pods and namespaces from this API server for the policy "
        "selector ipsets (default: the conflist's kubernetes.kubeconfig; without either, "
        "peer endpoint records under <state_dir>/peers)",
    ),
]

NodeOpt = Annotated[
    str | None,
    typer.Option(
        "--node",
        envvar="CALICC_NODE",
        help="the name of this node: a bundle compiled for another node is refused "
        "(default: the node of the installed bundle, if any)",
    ),
]

LogOpt = Annotated[
    Path | None,
    typer.Option("--command-log", help="write every command run (JSON: reads, writes) here"),
]


def write_command_log(
    path: Path, reads: list[tuple[str, ...]], writes: list[tuple[str, ...]]
) -> None:
    """Write the commands a run executed, for tests and benchmarks."""
    path.write_text(json.dumps({"reads": reads, "writes": writes}, indent=1) + "\n")


def print_report(result: ApplyResult, options: Options, as_json: bool) -> None:
    """Print what an apply did: JSON, or a line per change, failure and skipped part."""
    from calicc.agent.apply import BUNDLE_COPY

    if as_json:
        typer.echo(json.dumps(result.report(), sort_keys=True))
        return
    for line in result.lines():
        typer.echo(line, err=line.startswith(("error:", "skipped:")))
    if not result.ok:
        copy = options.root / BUNDLE_COPY
        typer.echo(f"applied: {', '.join(result.applied) or 'nothing'}", err=True)
        typer.echo(f"not installed: {copy} still holds the last fully applied bundle", err=True)


def invalid_report(message: str) -> dict[str, object]:
    """Return the --json report of a bundle that failed validation (nothing ran)."""
    from calicc.agent.apply import DEPENDS

    skipped = dict.fromkeys(DEPENDS, "because validate failed")
    failed = {"validate": message}
    return {"changed": False, "changes": {}, "applied": [], "failed": failed, "skipped": skipped}


def apply_cmd(
    bundle: BundleOpt,
    root: RootOpt = Path("/"),
    allow_tunnel_standin: StandinOpt = False,
    skip_address_check: NoAddrOpt = False,
    command_log: LogOpt = None,
    kubeconfig: KubeOpt = None,
    node: NodeOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='print {"changed", "changes", "applied", "failed", "skipped"} as JSON (Ansible)',
        ),
    ] = False,
) -> None:
    """Apply a node bundle once to this network namespace (idempotent).

    The bundle is validated first (nothing changes when it is invalid). A failed part skips
    the parts that depend on it and the bundle is then not installed as current; the exit code
    is 1 and the report lists the parts applied, failed (with the error) and skipped.
    """
    from calicc.agent.apply import Options, Reconciler, expected_node
    from calicc.agent.bundle import load_bundle

    options = Options(
        root=root,
        allow_tunnel_standin=allow_tunnel_standin,
        check_address=not skip_address_check,
        kubeconfig=kubeconfig,
        node=node,
    )
    try:
        verified = load_bundle(bundle, expected_node(options))
    except AgentError as exc:
        if as_json:
            typer.echo(json.dumps(invalid_report(str(exc)), sort_keys=True))
        raise
    reconciler = Reconciler(options)
    result = reconciler.reconcile(verified)
    if command_log is not None:
        write_command_log(command_log, reconciler.runner.reads, reconciler.runner.writes)
    print_report(result, options, as_json)
    if not result.ok:
        raise typer.Exit(1)
    if not result.changes and not as_json:
        typer.echo(f"{bundle}: node already in its desired state, nothing changed")


def agent_cmd(
    bundle: BundleOpt,
    interval: Annotated[float, typer.Option(help="seconds between reconciles")] = 10.0,
    root: RootOpt = Path("/"),
    allow_tunnel_standin: StandinOpt = False,
    skip_address_check: NoAddrOpt = False,
    kubeconfig: KubeOpt = None,
    node: NodeOpt = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on 127.0.0.1:PORT")
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option(help="write Prometheus metrics to this textfile")
    ] = None,
    cni_socket: Annotated[
        bool, typer.Option(help="serve the CNI plugins' requests on <root>/var/run/calicc")
    ] = True,
    full_read_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="read iptables in full every N intervals even when the nftables generation "
            "did not change (safety net of the drift watch)",
        ),
    ] = 10,
) -> None:
    """Reconcile this node to its bundle every interval until SIGTERM.

    Each interval loads the bundle again (a changed bundle on disk is applied), repairs drift
    (routes, chains, sets, sysctls, links, BIRD) and logs every repair with what was repaired.
    While nothing changed, a reconcile runs no command: ipsets are read over netlink and
    iptables-save runs only when the nftables generation id moved.

    Policy selector ipsets hold the matching pods of every node: listed each interval from the
    Kubernetes API (--kubeconfig, or the conflist's kubernetes.kubeconfig), else read from the
    peer endpoint records under <state_dir>/peers/<node>/endpoints/ (agent/peers.py).

    Metrics (Prometheus text, on --metrics-port and/or --metrics-file):
    calicc_agent_reconciles_total, calicc_agent_repairs_total, calicc_agent_errors_total,
    calicc_agent_bundles_applied_total, calicc_agent_commands_total,
    calicc_agent_reconcile_seconds (summary), calicc_agent_last_reconcile_seconds,
    calicc_ipam_block_addresses_used{block} and calicc_ipam_block_addresses{block} (IPAM use).
    """
    import logging

    from calicc.agent.apply import Options
    from calicc.agent.cni.server import CniServer
    from calicc.agent.loop import handle_signals, make_loop
    from calicc.agent.metrics import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = Options(
        root=root,
        allow_tunnel_standin=allow_tunnel_standin,
        check_address=not skip_address_check,
        kubeconfig=kubeconfig,
        node=node,
    )
    loop = make_loop(bundle, interval, options, metrics_file, full_read_every)
    handle_signals(loop.request_stop)
    server = serve(loop.metrics, metrics_port) if metrics_port is not None else None
    cni = CniServer(root) if cni_socket else None
    if cni is not None:
        cni.start()
    try:
        loop.run()
    finally:
        if cni is not None:
            cni.stop()
        if server is not None:
            server.shutdown()


def status_cmd(root: RootOpt = Path("/")) -> None:
    """Show BGP sessions, the node's blocks and their use, and the endpoints on this node."""
    from calicc.agent.runner import Runner
    from calicc.agent.status import status_lines

    for line in status_lines(root, Runner()):
        typer.echo(line)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("apply")(apply_cmd)
app.command("agent")(agent_cmd)
app.command("status")(status_cmd)
