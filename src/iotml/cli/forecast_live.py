"""``iotml forecast train | predict | show``: per-meter forecasts from the store.

``train`` fits a :class:`~iotml.forecast.model.ForecastModel` on the store's history and
saves it as a signed bundle; ``predict`` forecasts a meter now from the store; ``show``
prints the latest forecast the live stage (``iotml serve --forecast-model``) stored.
"""

from __future__ import annotations

__all__ = ["forecast_table", "predict_cmd", "show_cmd", "train_cmd"]

import math
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import (
    cli_settings,
    console,
    guard,
    open_cli_store,
    parse_duration,
    parse_time,
)
from iotml.cli.forecast import forecast_app
from iotml.cli.maintenance import parse_model_ref, split_names
from iotml.errors import ConfigError

if TYPE_CHECKING:
    from iotml.forecast.model import ForecastModel


def _levels(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in split_names([text], "--levels"))
    except ValueError as err:
        raise ConfigError(f"--levels {text!r} is not coverages such as 0.8,0.95") from err


def _fit(model: ForecastModel, store: Any, devices: list[str] | None, since: str | None,
         until: str | None) -> dict[str, float]:  # fmt: skip
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task("training", total=None)
        return model.fit(
            store, devices, parse_time(since, "--since"), parse_time(until, "--until"),
            progress=lambda text: progress.update(task, description=text),
        )  # fmt: skip


def _figures(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
        table.add_row(escape(key), text)
    return table


@forecast_app.command("train")
def train_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Model name in the registry.")],
    metric: Annotated[str, typer.Option(help="The metric forecast, e.g. power.")] = "power",
    devices: Annotated[
        list[str] | None, typer.Option(help="Only these meters (comma-separated or repeated).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="First time used (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="End of the data used (ISO-8601).")] = None,
    interval: Annotated[str, typer.Option(help="Resampling interval (a forecast step).")] = "1h",
    lookback: Annotated[int, typer.Option(min=1, help="Steps read per forecast.")] = 168,
    horizon: Annotated[int, typer.Option(min=1, help="Steps forecast.")] = 24,
    model: Annotated[
        str, typer.Option(help="Forecaster: ridge, neural (extra nn), seasonal or persistence.")
    ] = ("ridge"),
    levels: Annotated[str, typer.Option(help="Interval coverages, comma-separated.")] = (
        "0.8,0.95"
    ),
    max_gap: Annotated[int, typer.Option(min=0, help="Empty steps interpolated.")] = 3,
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train one forecaster per meter on the store's history; save the signed bundle."""
    with guard():
        from iotml.forecast.model import ForecastModel
        from iotml.registry import ModelRegistry

        forecast = ForecastModel(
            metric, interval=parse_duration(interval, "--interval"), lookback=lookback,
            horizon=horizon, model=model, levels=_levels(levels), max_gap=max_gap,
        )  # fmt: skip
        chosen = split_names(devices, "--devices") if devices else None
        with open_cli_store(ctx) as store:
            result = _fit(forecast, store, chosen, since, until)
        forecast.save(ModelRegistry(cli_settings(ctx).home), name, version)
    if json_:
        body = {"model": forecast.ref, "metrics": result, "skipped": forecast.skipped_}
        console.print_json(orjson.dumps(body).decode())
        return
    for device, why in forecast.skipped_.items():
        console.print(f"[yellow]{escape(device)} skipped:[/] {escape(why)}")
    span = " to ".join(forecast.span_ or ())
    title = f"trained {escape(forecast.ref)} ({model}, {metric}, {span})"
    console.print(_figures(title, result))
    console.print(
        "[dim]val_*: validation part (the ridge penalty was chosen there); calib_* and "
        "coverage_*: calibration part, in the metric's units[/]"
    )


def forecast_table(title: str, body: dict[str, Any]) -> Table:
    """A forecast (the ``detail`` of a ``forecast`` event) as a table: time, point, ranges."""
    levels = sorted(body["lower"], key=float)
    places = _places([*body["point"], *(v for k in levels for v in body["upper"][k])])
    table = Table(title=title)
    table.add_column("time (UTC)")
    table.add_column("forecast", justify="right")
    for level in levels:
        table.add_column(f"{float(level):.0%} interval", justify="right")
    for i, ts in enumerate(body["ts"]):
        ranges = [f"{body['lower'][k][i]:.{places}f} to {body['upper'][k][i]:.{places}f}"
                  for k in levels]  # fmt: skip
        table.add_row(str(ts).replace("T", " ")[:16], f"{body['point'][i]:.{places}f}", *ranges)
    return table


def _places(values: list[float]) -> int:
    """Decimal places that show about three significant digits of the largest value.

    >>> _places([0.5, 2.37]), _places([1234.0]), _places([0.0])
    (2, 0, 2)
    """
    largest = max((abs(v) for v in values), default=0.0)
    return 2 if largest == 0 else max(0, min(4, 2 - math.floor(math.log10(largest))))


@forecast_app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="NAME or NAME@VERSION from the registry.")],
    device: Annotated[str, typer.Option(help="The meter to forecast.")],
    at: Annotated[
        str | None, typer.Option(help="Forecast as of this time (ISO-8601; default: now).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Forecast one meter now from its recent history in the store."""
    with guard():
        from iotml.forecast.model import ForecastModel
        from iotml.pipeline.forecast import forecast_detail
        from iotml.registry import ModelRegistry

        name, version = parse_model_ref(model)
        forecast = ForecastModel.load(ModelRegistry(cli_settings(ctx).home), name, version)
        with open_cli_store(ctx) as store:
            found = forecast.forecast(store, device, parse_time(at, "--at"))
    body = {"device_id": device, "model": forecast.ref, **forecast_detail(found)}
    if json_:
        console.print_json(orjson.dumps(body).decode())
        return
    console.print(forecast_table(_title(body), body))


def _title(body: dict[str, Any]) -> str:
    return (
        f"{escape(body['device_id'])}: {escape(body['metric'])} forecast by "
        f"{escape(body['model'])} from data up to {body['history_end']}"
    )


@forecast_app.command("show")
def show_cmd(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="The meter.")],
    metric: Annotated[str | None, typer.Option(help="Only forecasts of this metric.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The latest forecast the live stage stored for a meter."""
    with guard():
        from iotml.pipeline.forecast import latest_forecast

        with open_cli_store(ctx) as store:
            found = latest_forecast(store, device, metric)
        if found is None:
            what = f"{metric!r} forecast" if metric else "forecast"
            raise ConfigError(
                f"no {what} stored for {device!r}; run iotml serve --forecast-model NAME"
            )
    if json_:
        console.print_json(orjson.dumps(found).decode())
        return
    console.print(forecast_table(f"{_title(found)}, issued {found['issued']}", found))
