"""``iotml forecast``: the command group for energy-consumption forecasting.

The commands live in :mod:`iotml.cli.forecast_eval` (``evaluate``, ``plot``) and
:mod:`iotml.cli.forecast_live` (``train``, ``predict``, ``show``); both register on
:data:`forecast_app`.
"""

from __future__ import annotations

__all__ = ["forecast_app"]

import typer

from iotml.cli.common import app

forecast_app = typer.Typer(
    help="Forecasting: consumption per meter with intervals; benchmarks on ETT files.",
    no_args_is_help=True,
)
app.add_typer(forecast_app, name="forecast")
