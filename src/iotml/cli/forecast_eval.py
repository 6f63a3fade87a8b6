"""``iotml forecast evaluate`` and ``iotml forecast plot``: benchmark protocols on a file.

``--dataset ett`` takes any ETT-format CSV (the standard 12/4/4-month split from its
sampling rate), ``--dataset household`` the hourly household-power CSV (the last 365 days
as test). Errors are standardised with training statistics, over every test window.
"""

from __future__ import annotations

__all__ = ["DEFAULTS", "evaluate_cmd", "plot_cmd"]

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import console, err_console, guard
from iotml.cli.forecast import forecast_app
from iotml.errors import ConfigError, require_extra

#: Default ``(lookback, horizon)`` per dataset: the ETT papers' 96/96, a week for a day.
DEFAULTS = {"ett": (96, 96), "household": (168, 24)}
_METHODS = ("persistence", "seasonal_24h", "seasonal_168h", "ridge", "neural")

Dataset = Annotated[str, typer.Option(help="ett (any ETT-format CSV) or household.")]
File = Annotated[Path, typer.Option(help="The CSV file.")]
Lookback = Annotated[
    int | None, typer.Option(help="Rows of history per forecast (ett: 96, household: 168).")
]
Horizon = Annotated[int | None, typer.Option(help="Rows forecast (ett: 96, household: 24).")]
Neural = Annotated[
    bool, typer.Option("--neural/--no-neural", help='Also the neural model (needs "iotml\\[nn]").')
]
Seed = Annotated[int, typer.Option(help="Seed of the neural model (the baselines are exact).")]


@forecast_app.command("evaluate")
def evaluate_cmd(
    dataset: Dataset,
    file: File,
    lookback: Lookback = None,
    horizon: Horizon = None,
    neural: Neural = False,
    seed: Seed = 0,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """MSE / MAE per method on the test windows (standardised, all channels), ridge intervals."""
    with guard():
        lookback, horizon = _lengths(dataset, lookback, horizon)
        with _progress(f"evaluating {file.name}") as progress:
            model = _neural(seed) if neural else None
            if dataset == "ett":
                result = _evaluate_ett(file, lookback, horizon, model, progress)
            else:
                from iotml.forecast.evaluate import evaluate_household

                result = evaluate_household(
                    file, lookback, horizon, neural=model, progress=progress
                )
    result = {"dataset": dataset, "seed": seed, **result}
    if json_:
        typer.echo(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    console.print(_table(result))


@forecast_app.command("plot")
def plot_cmd(
    dataset: Dataset,
    file: File,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the PNG files.")],
    lookback: Lookback = None,
    horizon: Horizon = None,
    neural: Neural = False,
    seed: Seed = 0,
    channel: Annotated[
        str | None,
        typer.Option(help="Channel drawn (ett: the last, e.g. OT; household: the target)."),
    ] = None,
    window: Annotated[int, typer.Option(help="Test window drawn: 0 the first, -1 the last.")] = -1,
) -> None:
    """PNGs: one test window's forecast with 80/95 % bands, and the MSE by lead time."""
    with guard():
        lookback, horizon = _lengths(dataset, lookback, horizon)
        with _progress(f"fitting on {file.name}") as progress:
            model = _neural(seed) if neural else None
            paths = _plot(dataset, file, output, lookback, horizon, model, progress,
                          channel, window)  # fmt: skip
    for path in paths:
        console.print(f"wrote {escape(str(path))}")


def _lengths(dataset: str, lookback: int | None, horizon: int | None) -> tuple[int, int]:
    if dataset not in DEFAULTS:
        raise ConfigError(f"--dataset {dataset!r} is not one of {sorted(DEFAULTS)}")
    default_lookback, default_horizon = DEFAULTS[dataset]
    lookback = default_lookback if lookback is None else lookback
    horizon = default_horizon if horizon is None else horizon
    if lookback < 1 or horizon < 1:
        raise ConfigError(f"--lookback {lookback}, --horizon {horizon}: expected both >= 1")
    return lookback, horizon


def _neural(seed: int) -> Any:
    """The neural forecaster (extra ``nn``), imported only when asked for."""
    module = require_extra("iotml.forecast.neural", "nn")
    return module.NeuralForecaster(seed=seed)


@contextmanager
def _progress(description: str) -> Iterator[Callable[..., None]]:
    """A spinner on stderr (stdout stays clean for ``--json``); yields its update function."""
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task(description, total=None)

        def update(*args: Any, **kwargs: Any) -> None:
            if len(args) == 4 and not kwargs:  # the neural model: epoch and its MSEs
                epoch, train, val, best = args
                text = (
                    f"epoch {epoch}: train MSE {train:.4f}, validation {val:.4f} (best {best:.4f})"
                )
            else:
                text = " ".join([str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()])
            progress.update(task, description=f"{description}: {text}")

        yield update


def _evaluate_ett(
    file: Path, lookback: int, horizon: int, model: Any, progress: Callable[..., None]
) -> dict[str, Any]:
    from iotml.datasets import ett_split, read_ett
    from iotml.forecast.evaluate import check_lengths, evaluate_ett, ridge_coverage

    data = read_ett(file)
    split = ett_split(len(data.values), data.freq, lookback)
    check_lengths(split, lookback, horizon)
    result = evaluate_ett(file, lookback, horizon, neural=model, progress=progress)
    result["ridge"].update(ridge_coverage(data.values, split, lookback, horizon))
    return result


def _table(result: dict[str, Any]) -> Table:
    methods = [m for m in _METHODS if m in result]
    columns = {"mse": "MSE", "mae": "MAE"}
    if result["dataset"] == "household":
        h = result["horizon"]
        columns |= {"target_mae_kw": "MAE kW", "target_mae_kw_last": f"MAE kW @{h}"}
    coverage = sorted(
        {k for m in methods for k in result[m] if "coverage_" in k and "rolling" not in k}
    )
    columns |= {k: k.replace("target_", "").replace("coverage_", "cover ") + "%" for k in coverage}
    title = (
        f"{escape(Path(result['file']).name)}: L={result['lookback']}, H={result['horizon']}, "
        f"{result['test_windows']} test windows"
    )
    caption = "MSE, MAE: standardised with training statistics, all channels"
    if result["dataset"] == "household":
        caption += f"; kW and coverage: {result['target']}"
    table = Table(title=title, caption=caption)
    table.add_column("method")
    for label in columns.values():
        table.add_column(label, justify="right")
    for method in methods:
        row = result[method]
        table.add_row(method, *(f"{row[k]:.3f}" if k in row else "" for k in columns))
    return table


def _plot(
    dataset: str, file: Path, output: Path, lookback: int, horizon: int, model: Any,
    progress: Callable[..., None], channel: str | None, window: int,
) -> list[Path]:  # fmt: skip
    from iotml.forecast.evaluate import fit_methods, lead_time_errors
    from iotml.forecast.plots import plot_lead_time_errors

    data, split = _read(dataset, file, lookback)
    methods = fit_methods(data.values, data.freq, split, lookback, horizon, neural=model,
                          progress=progress, timestamps=data.timestamps)  # fmt: skip
    stem = f"{file.stem}_L{lookback}_H{horizon}"
    step = _step_name(data.freq.total_seconds())
    lead = {name: lead_time_errors(predict, methods.test[name], inputs=methods.test_inputs)
                  ["mse"].mean(axis=1)
            for name, predict in methods.predict.items()}  # fmt: skip
    errors = plot_lead_time_errors(
        lead, output / f"{stem}_lead_time_mse.png", step=step,
        metric="MSE (standardised, all channels)", title=f"{file.name}: test MSE by lead time",
    )  # fmt: skip
    drawn = _plot_window(data, split.test[0], methods, output / f"{stem}_forecast.png",
                         channel, window)  # fmt: skip
    return [drawn, errors]


def _read(dataset: str, file: Path, lookback: int) -> tuple[Any, Any]:
    from iotml.datasets import ett_split, household_split, read_ett, read_household

    if dataset == "ett":
        data = read_ett(file)
        return data, ett_split(len(data.values), data.freq, lookback)
    data = read_household(file)
    return data, household_split(len(data.values), data.freq, lookback)


def _plot_window(
    data: Any, test_start: int, methods: Any, path: Path, channel: str | None, window: int
) -> Path:
    from iotml.datasets import HOUSEHOLD_TARGET
    from iotml.forecast.evaluate import conformal_widths
    from iotml.forecast.plots import plot_forecast
    from iotml.forecast.windows import Windows

    names = list(data.channels)
    name = channel or (HOUSEHOLD_TARGET if HOUSEHOLD_TARGET in names else names[-1])
    if name not in names:
        raise ConfigError(
            f"--channel {name!r} is not a column of the file; expected one of {names}"
        )
    c, count = names.index(name), len(methods.test["ridge"].X)
    if not -count <= window < count:
        raise ConfigError(f"--window {window} is out of range; expected -{count} to {count - 1}")
    j = window % count
    lookback, horizon = methods.val.X.shape[1], methods.val.Y.shape[1]
    mean, scale = methods.scaler.mean_[c], methods.scaler.scale_[c]
    rows = test_start + j
    stamps = data.timestamps
    given = methods.test_inputs[j : j + 1]
    forecasts = {m: methods.predict[m](methods.test[m].X[j : j + 1], given)[0, :, c] * scale + mean
                 for m in methods.predict}  # fmt: skip
    banded = "neural" if "neural" in methods.predict else "ridge"

    def only(x: np.ndarray, inputs: Any) -> np.ndarray:
        out: np.ndarray = methods.predict[banded](x, inputs)[:, :, c : c + 1]
        return out

    val = Windows(methods.val.X, methods.val.Y[:, :, c : c + 1])
    widths = conformal_widths(only, val, inputs=methods.val_inputs)
    point = forecasts[banded]
    bands = {level: (point - w[:, 0] * scale, point + w[:, 0] * scale)
             for level, w in widths.items()}  # fmt: skip
    return plot_forecast(
        (stamps[rows : rows + lookback], data.values[rows : rows + lookback, c]),
        (stamps[rows + lookback : rows + lookback + horizon],
         data.values[rows + lookback : rows + lookback + horizon, c]),
        forecasts, path, bands=bands, band_of=banded,
        title=f"{name}: test window {j} of {count} (intervals from validation errors)",
        ylabel=name,
    )  # fmt: skip


def _step_name(seconds: float) -> str:
    """The unit a lead time is counted in: ``h`` for hourly data, else the step itself."""
    if seconds == 3600:
        return "h"
    return (
        f"steps of {seconds / 60:g} min" if seconds < 86400 else f"steps of {seconds / 86400:g} d"
    )
