"""The ``iotml`` command line (Typer + Rich).

User mistakes — a missing file, a bad time, an unreadable store — print one line starting
``error:`` and exit with status 1; usage errors exit with 2. Nothing prints a traceback.
"""

from __future__ import annotations

__all__ = ["app", "main"]

from pathlib import Path
from typing import Annotated

import typer

from iotml import __version__
from iotml.cli import (  # noqa: F401 - importing registers the commands
    cluster,
    control,
    data,
    demo,
    detect,
    forecast_eval,
    forecast_live,
    inspect,
    keys,
    maintenance,
    netsec,
    serve,
    simulate,
)
from iotml.cli.common import State, app, console


def _version(value: bool) -> None:
    if value:
        console.print(f"iotml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            help="Data directory (default: $IOTML_HOME or ./iotml-data).", show_default=False
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            envvar="IOTML_STORE",
            help="Store: a DuckDB file path, duckdb:///path or memory:// "
            "(default: <home>/iotml.duckdb).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Machine learning on IoT telemetry: ingest, store, analyse."""
    ctx.obj = State(home=home, store=store)


def main() -> None:
    """Console-script entry point."""
    app()
