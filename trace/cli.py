"""`calicc trace`: what the compiled cluster does with one packet.

Exit 0 when the packet arrives, 1 when it is denied or unroutable, 2 on bad arguments or input.
The pods come from a pods file (--pods, trace/pods.py) or from the Kubernetes API
(--kubeconfig, trace/kube_pods.py; imported only then: the API client brings ssl and http).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from calicc.compiler.errors import SpecError
from calicc.trace.answer import Tracer, parse_port
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.pods import PodsFile, load_pods
from calicc.trace.report import as_json, as_text
from calicc.trace.view import TreeView

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
BAD_INPUT = 2


@app.command("trace")
def trace_cmd(
    src: Annotated[str, typer.Argument(help="a pod (namespace/name), a node, or an IP address")],
    dst: Annotated[str, typer.Argument(help="a pod (namespace/name), a node, or an IP address")],
    port: Annotated[
        str | None, typer.Option("--port", "-p", help="PORT/PROTO, e.g. 8080/TCP; none: ping")
    ] = None,
    tree: Annotated[
        Path, typer.Option("--tree", help="the rendered tree (`calicc build`'s output)")
    ] = Path("rendered"),
    pods: Annotated[
        Path | None, typer.Option("--pods", help="the pods file (docs/pods-file.md)")
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="read the pods from the Kubernetes API of this kubeconfig, not a pods file "
            "(docs/pods-file.md); not with --pods",
        ),
    ] = None,
    family: Annotated[
        int | None, typer.Option("--family", help="4 or 6, for dual-stack ends (default 4)")
    ] = None,
    as_json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Say what the compiled cluster does with one packet: route, MTU, SNAT, policy verdict."""
    raise typer.Exit(run_trace(src, dst, port, tree, pods, kubeconfig, family, as_json_out))


def run_trace(
    src: str,
    dst: str,
    port: str | None,
    tree: Path,
    pods: Path | None,
    kubeconfig: Path | None,
    family: int | None,
    as_json_out: bool,
) -> int:
    """Trace one packet and print the answer; return the exit code (0, 1, or 2: bad input)."""
    try:
        if family not in (None, 4, 6):
            raise TraceError(f"--family {family}: give 4 or 6")
        if pods is not None and kubeconfig is not None:
            raise TraceError("give --pods or --kubeconfig, not both: the pods come from one")
        view = TreeView.open(tree, cached=True)
        cluster = Cluster(view, _read_pods(view, pods, kubeconfig))
        packet = parse_port(port)
        source = cluster.resolve(src, family)
        target = cluster.resolve(dst, family or source.address.version)
        if source.address.version != target.address.version:
            raise TraceError(f"{src} and {dst} have no address of the same family")
        answer = Tracer(cluster).trace(source, target, packet)
    except (TraceError, SpecError) as exc:
        typer.echo(f"calicc trace: {exc}", err=True)
        return BAD_INPUT
    if as_json_out:
        typer.echo(json.dumps(as_json(answer), indent=2, sort_keys=True))
    else:
        typer.echo(as_text(answer), nl=False)
    return 0 if answer.allowed else 1


def quick_trace(args: list[str]) -> int | None:
    """Run `calicc trace ARGS` before typer converts the values; return its exit code.

    As compiler/cli.py's noop_build: click's parser reads ARGS as trace_cmd declares them, and
    the values skip typer's conversion, which loads pydantic (a third of a cached trace's
    time). None (typer runs the command) for --help, a usage error or a --family that is no
    number: typer reports those.
    """
    command = typer.main.get_group(app).commands["trace"]
    try:
        opts, rest, _ = command.make_parser(command.context_class(command)).parse_args(args)
    except typer.TyperException:
        return None
    given = {**DEFAULTS, **{k: v for k, v in opts.items() if v is not None}}
    if rest or given.get("help") or given["src"] is None or given["dst"] is None:
        return None
    family = given["family"]
    if family is not None and not (str(family).isascii() and str(family).isdigit()):
        return None

    def path(value: object) -> Path | None:
        return None if value is None else Path(str(value))

    return run_trace(
        str(given["src"]), str(given["dst"]),
        None if given["port"] is None else str(given["port"]),
        Path(str(given["tree"])), path(given["pods"]), path(given["kubeconfig"]),
        None if family is None else int(family), bool(given["as_json_out"]),
    )  # fmt: skip


def _read_pods(view: TreeView, pods: Path | None, kubeconfig: Path | None) -> PodsFile | None:
    """Return the pods of the pods file, or of the Kubernetes API (None: neither was named)."""
    if kubeconfig is None:
        return load_pods(pods, view.by_name) if pods is not None else None
    from calicc.trace.kube_pods import pods_from_api  # the API client: ssl and http, only here

    found = pods_from_api(kubeconfig, view.by_name)
    note = found.left_out()
    if note is not None:
        typer.echo(f"calicc trace: {note}", err=True)
    return found


DEFAULTS: dict[str, object] = {
    name: None if p.default is inspect.Parameter.empty else p.default
    for name, p in inspect.signature(trace_cmd).parameters.items()
}
