"""The calicc command: the compiler's, the agent's and the lab's commands, composed here.

compiler/cli.py, agent/cli.py and lab/cli.py each declare their own commands; none of them
imports another part's.
"""

from __future__ import annotations

import sys

import typer

from calicc.agent.cli import register as register_agent
from calicc.compiler.cli import app, state
from calicc.compiler.errors import CaliccError
from calicc.lab.cli import lab_app

register_agent(app)
app.add_typer(lab_app, name="lab")


def main() -> None:
    """Entry point: run the app; a CaliccError or an OSError is one message and exit code 1."""
    try:
        app()
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
