"""The calicc command: the compiler's, the agent's, the trace's and the lab's commands, composed.

compiler/cli.py, agent/cli.py, trace/cli.py and lab/cli.py each declare their own commands; none
of them imports another part's. COMMANDS names every command with its part and one-line help, so
`calicc --help` lists them all without importing any part, and a command's part is imported
only when that command runs: `calicc build` never loads the agent, the lab, pyroute2 or
Ansible. (click's docs call this lazily loading subcommands.)
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group

from calicc.compiler.errors import CaliccError


@dataclass(frozen=True)
class Entry:
    """Where a command lives: its part's cli module and typer app, and its one-line help."""

    module: str
    help: str  # the first line of the command's docstring (a test keeps the two equal)
    app: str = "app"
    group: bool = False  # the app is itself the command (`calicc lab ...`)


_COMPILER = "calicc.compiler.cli"
_AGENT = "calicc.agent.cli"
COMMANDS = {
    "build": Entry(
        _COMPILER,
        "Compile the cluster into per-node artifacts (rendered/ beside the cluster file).",
    ),
    "validate": Entry(
        _COMPILER, "Run every check and the real tools' syntax checks, writing nothing."
    ),
    "convert": Entry(
        _COMPILER,
        "Write the cluster.yaml equivalent of an ICP config.yaml and hosts (calicc's own keys).",
    ),
    "import": Entry(
        _COMPILER,
        "Write cluster.yaml, policies and lock from a running Calico's exported resources.",
    ),
    "schema": Entry(
        _COMPILER, "Write the JSON Schemas generated from the models, and their reference pages."
    ),
    "inventory": Entry(
        _COMPILER,
        "Write an Ansible inventory (YAML) of the cluster's nodes, grouped by role and label.",
    ),
    "push": Entry(
        _COMPILER,
        "Push the rendered bundles with Ansible: route reflectors first, then batches.",
    ),
    "diff": Entry(
        _COMPILER,
        "Summarise a change to the rendered trees, per node, and to reachability (for a PR).",
    ),
    "apply": Entry(_AGENT, "Apply a node bundle once to this network namespace (idempotent)."),
    "agent": Entry(_AGENT, "Reconcile this node to its bundle every interval until SIGTERM."),
    "status": Entry(
        _AGENT,
        "Show BGP sessions, the node's blocks and their use, and the endpoints on this node.",
    ),
    "trace": Entry(
        "calicc.trace.cli",
        "Say what the compiled cluster does with one packet: route, MTU, SNAT, policy verdict.",
    ),
    "lab": Entry(
        "calicc.lab.cli", "Run a compiled cluster as network namespaces.", "lab_app", group=True
    ),
}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="calicc: Calico-style pod networking compiled from git, cluster.yaml to node bundles.",
)
state = {"debug": False}


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    """calicc: compile Calico-style pod networking from git."""
    state["debug"] = debug


# click's types are typer's private vendored copy (typer >= 0.23) or click itself (older):
# Any keeps this module to typer's public names.
def load_command(name: str) -> Any:
    """Import the part that declares command `name` and return its click command."""
    entry = COMMANDS[name]
    group = get_group(getattr(importlib.import_module(entry.module), entry.app))
    return group if entry.group else group.commands[name]


class LazyCommand(TyperCommand):
    """A command known by name and help alone; its part is imported when it is run."""

    def __init__(self, name: str) -> None:
        super().__init__(name, help=COMMANDS[name].help, add_help_option=False)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        """Build the real command's context: from here on click runs the real command."""
        return load_command(self.name or "").make_context(info_name, args, parent, **extra)


def command() -> TyperGroup:
    """Return the calicc command group, every command in it lazy."""
    group = get_group(app)
    for name in COMMANDS:
        group.add_command(LazyCommand(name))
    return group


def main() -> None:
    """Entry point: run the app; a CaliccError or an OSError is one message and exit code 1.

    A `calicc build` with nothing to do, and `calicc trace`, are answered before click runs
    (see noop_build and quick_trace).
    """
    try:
        if sys.argv[1:2] == ["build"]:
            from calicc.compiler.cli import noop_build

            if noop_build(sys.argv[2:]):
                return
        if sys.argv[1:2] == ["trace"]:
            from calicc.trace.cli import quick_trace

            code = quick_trace(sys.argv[2:])
            if code is not None:
                sys.exit(code)
        command()()
    except CaliccError as exc:
        if state["debug"]:
            raise
        text = str(exc)
        typer.echo(text if "\n" in text else f"error: {text}", err=True)
        sys.exit(1)
    except OSError as exc:  # a disk, permission or device error outside calicc's own checks
        if state["debug"]:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
