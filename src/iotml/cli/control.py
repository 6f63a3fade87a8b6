"""``iotml control``: learned control — a DQN thermostat and Q-learning route choice.

The commands live in :mod:`iotml.cli.control_thermostat` (``thermostat train | evaluate``)
and :mod:`iotml.cli.control_route` (``route train | evaluate``); they need the ``rl``
extra (gymnasium, stable-baselines3, networkx), imported only when a command runs.
"""

from __future__ import annotations

__all__ = ["control_app"]

import typer

from iotml.cli import control_route, control_thermostat
from iotml.cli.common import app

control_app = typer.Typer(
    help="Learned control: a DQN thermostat and Q-learning routes, against strong baselines.",
    no_args_is_help=True,
)
control_app.add_typer(control_thermostat.app, name="thermostat")
control_app.add_typer(control_route.app, name="route")
app.add_typer(control_app, name="control")
