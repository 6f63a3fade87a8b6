"""``iotml control thermostat train | evaluate``: a DQN thermostat against its baselines.

Weeks come from a weather CSV (``--weather``) or a seeded synthetic heating season. Every
fourth week (indices 3, 7, 11, ...) is held out: ``train`` learns only from the others and
``evaluate`` judges only on held-out weeks, so no controller is scored on a week it was
trained on. ``evaluate`` runs the fixed thermostat, the schedule-aware one (setback 16 °C,
optimum start), MPC with perfect forecasts and, given ``--model``, the DQN, through one
simulation, and prints energy (kWh), cost and discomfort (K·h) side by side.
"""

from __future__ import annotations

__all__ = ["app", "evaluate_cmd", "train_cmd"]

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import cli_settings, console, err_console, guard
from iotml.cli.maintenance import parse_model_ref
from iotml.errors import ConfigError

if TYPE_CHECKING:
    from iotml.control.dqn import PolicySettings, ThermostatPolicy, TrainingProgress
    from iotml.control.scenario import Scenario
    from iotml.control.thermostat_eval import Evaluation

app = typer.Typer(
    help="A DQN smart thermostat: train it, and judge it against fixed, schedule-aware and "
    "MPC thermostats on held-out weeks.",
    no_args_is_help=True,
)

TEST_EVERY = 4  # every fourth week is held out, in training and in evaluation alike
_JSON = orjson.OPT_SERIALIZE_NUMPY

Weather = Annotated[
    Path | None,
    typer.Option(
        show_default=False,
        help="Weather CSV (columns time, temperature); default: synthetic winter weeks.",
    ),
]
Days = Annotated[
    float, typer.Option(min=0.25, max=7.0, help="Days of each week simulated (7: whole weeks).")
]
Zones = Annotated[int, typer.Option(min=1, max=2, help="1 (SimpleRC) or 2 zones (TwoZones).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _registry(ctx: typer.Context) -> Any:
    from iotml.registry import ModelRegistry

    return ModelRegistry(cli_settings(ctx).home)


def _settings(zones: int, w_discomfort: float = 1.0) -> PolicySettings:
    from iotml.control.dqn import PolicySettings
    from iotml.control.thermal import Heater, simple_rc, two_zones
    from iotml.control.thermostat import SetpointActions

    if zones == 1:
        model, heater = simple_rc(), Heater(5000.0)
    else:
        model, heater = two_zones(), Heater(2500.0)
    return PolicySettings(model, heater, SetpointActions(zones=zones), w_discomfort=w_discomfort)


def _weeks(weather: Path | None, n_weeks: int | None, seed: int) -> list[Scenario]:
    """``n_weeks`` weeks (all whole weeks of the CSV when ``None``) of weather ``seed``."""
    from iotml.control.scenario import WEEK_S, make_weeks, read_weather_csv

    if weather is None:
        return make_weeks(n_weeks or 12, seed=seed)
    series = read_weather_csv(weather)
    for problem in series.problems[:5]:
        err_console.print(f"[yellow]{escape(problem)}[/]")
    held = len(series.t_out) // (WEEK_S // series.step_s)
    if held < 1:
        raise ConfigError(f"{weather} holds less than one whole week of weather")
    return make_weeks(min(held, n_weeks or held), seed=seed, weather=series)


def _part(weeks: list[Scenario], days: float, held_out: bool) -> list[Scenario]:
    from iotml.control.scenario import split_weeks

    if len(weeks) < TEST_EVERY and held_out:
        raise ConfigError(f"{len(weeks)} weeks hold no held-out week; give {TEST_EVERY} or more")
    train, test = split_weeks(weeks, test_every=TEST_EVERY)
    chosen = test if held_out else train
    if not chosen:
        raise ConfigError(f"{len(weeks)} weeks hold no training week")
    return chosen if days >= 7 else [w.window(0, 24 * days) for w in chosen]


# -- train --------------------------------------------------------------------------------


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Model name in the registry.")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    timesteps: Annotated[int, typer.Option(min=1, help="Training steps (672 a week).")] = 150_000,
    seed: Annotated[int, typer.Option(help="Seed of the network and exploration.")] = 0,
    zones: Zones = 1,
    weather: Weather = None,
    weeks: Annotated[
        int, typer.Option(min=2, help="Synthetic weeks generated; every 4th is held out.")
    ] = 12,
    weather_seed: Annotated[int, typer.Option(help="Seed of the synthetic weather.")] = 0,
    days: Days = 7.0,
    w_discomfort: Annotated[
        float, typer.Option(min=0.0, help="Reward: euros per K·h of discomfort.")
    ] = 1.0,
    json_: Json = False,
) -> None:
    """Train a DQN thermostat on the training weeks and save it to the registry."""
    with guard():
        from iotml.control.dqn import train_dqn

        settings = _settings(zones, w_discomfort)
        train = _part(_weeks(weather, weeks, weather_seed), days, held_out=False)
        with _progress() as bar:
            task = bar.add_task("training", total=timesteps)

            def show(p: TrainingProgress) -> None:
                bar.update(task, completed=p.timesteps,
                           description=f"training: {p.episodes} episodes, mean return "
                           f"{p.mean_reward:.2f}")  # fmt: skip

            policy = train_dqn(train, timesteps=timesteps, seed=seed, progress=show,
                               settings=settings)  # fmt: skip
        policy.meta["data"] = {
            "weather": "synthetic" if weather is None else str(weather),
            "weather_seed": weather_seed, "weeks": weeks, "days": days,
            "test_every": TEST_EVERY, "training_weeks": [str(s.start) for s in train],
        }  # fmt: skip
        policy.save(_registry(ctx), name, version, {"training_s": policy.meta["training_s"]})
    body = {"model": policy.ref, "timesteps": timesteps, "seed": seed, "zones": zones,
            "training_weeks": len(train), "training_s": policy.meta["training_s"]}  # fmt: skip
    if json_:
        console.print_json(orjson.dumps(body, option=_JSON).decode())
        return
    console.print(
        f"trained {escape(policy.ref)}: {timesteps} steps on {len(train)} training weeks "
        f"in {policy.meta['training_s']:.0f} s"
    )


def _progress(counts: bool = True) -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn()]
    if counts:
        columns.append(TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"))
    return Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True)


# -- evaluate -----------------------------------------------------------------------------


def _seeds(text: str) -> list[int]:
    """``--seeds`` as integers.

    >>> _seeds("0,1, 2")
    [0, 1, 2]
    """
    try:
        found = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--seeds is {text!r}; expected integers such as 0,1,2") from None
    if not found:
        raise ConfigError("--seeds is empty; expected integers such as 0,1,2")
    return found


def _evaluate(held_out: list[Scenario], policy: ThermostatPolicy | None, zones: int) -> Evaluation:
    from iotml.control.baselines import FixedSetpoint, MPCController, ScheduleAware
    from iotml.control.simulation import Controller
    from iotml.control.thermostat_eval import evaluate_controllers

    settings = policy.settings if policy is not None else _settings(zones)
    controllers: dict[str, Controller] = {
        "fixed": FixedSetpoint(21.5),
        "schedule-aware": ScheduleAware(setback=16.0),
        "mpc": MPCController(),
    }
    if policy is not None:
        controllers["dqn"] = policy.controller()
    return evaluate_controllers(held_out, controllers, settings.model, settings.heater)


@app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(show_default=False, help="A trained DQN, NAME or NAME@VERSION."),
    ] = None,
    weeks: Annotated[
        int, typer.Option(min=1, help="Held-out weeks per seed (every 4th of 4N weeks).")
    ] = 3,
    seeds: Annotated[str, typer.Option(help="Synthetic weather seeds, comma-separated.")] = "0",
    zones: Zones = 1,
    weather: Weather = None,
    days: Days = 7.0,
    plots: Annotated[
        Path | None,
        typer.Option(show_default=False, help="Folder for week.png and tradeoff.png."),
    ] = None,
    json_: Json = False,
) -> None:
    """KPIs of fixed, schedule-aware, MPC and (with --model) DQN on held-out weeks."""
    with guard():
        from iotml.control.dqn import ThermostatPolicy
        from iotml.control.plots import plot_tradeoff, plot_week

        policy = None
        if model is not None:
            policy = ThermostatPolicy.load(_registry(ctx), *parse_model_ref(model))
            zones = policy.settings.model.zones
        held_out = [
            s
            for seed in (_seeds(seeds) if weather is None else [0])
            for s in _part(_weeks(weather, TEST_EVERY * weeks, seed), days, held_out=True)
        ]
        with _progress(counts=False) as bar:
            bar.add_task(f"simulating {len(held_out)} held-out weeks", total=None)
            result = _evaluate(held_out, policy, zones)
        written = []
        if plots is not None:
            written = [str(plot_week(result, plots / "week.png")),
                       str(plot_tradeoff(result, plots / "tradeoff.png"))]  # fmt: skip
    if json_:
        body = {"model": None if policy is None else policy.ref, **result.as_dict(),
                "plots": written}  # fmt: skip
        console.print_json(orjson.dumps(body, option=_JSON).decode())
        return
    _print(result, policy)
    for path in written:
        console.print(f"wrote {escape(path)}")


def _print(result: Evaluation, policy: ThermostatPolicy | None) -> None:
    where = "" if policy is None else f", DQN {escape(policy.ref)}"
    table = Table(title=f"mean KPIs over {len(result.scenarios)} held-out weeks{where}")
    for column in ("controller", "energy kWh", "cost", "discomfort K·h", "worst K"):
        table.add_column(column, justify="left" if column == "controller" else "right")
    for name, k in result.means().items():
        table.add_row(name, f"{k.energy_kwh:.1f}", f"{k.cost:.2f}", f"{k.discomfort_kh:.2f}",
                      f"{k.max_violation_k:.2f}")  # fmt: skip
    console.print(table)
