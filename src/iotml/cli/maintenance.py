"""``iotml maintenance``: train from the store and a repair log, predict, evaluate, plot."""

from __future__ import annotations

__all__ = [
    "evaluate_cmd",
    "maintenance_app",
    "parse_model_ref",
    "plot_cmd",
    "predict_cmd",
    "split_names",
    "train_cmd",
]

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from iotml.cli.common import (
    app,
    cli_settings,
    console,
    guard,
    open_cli_store,
    parse_duration,
    parse_time,
)
from iotml.errors import ConfigError

if TYPE_CHECKING:
    from iotml.maintenance.model import MaintenanceModel, Prediction

maintenance_app = typer.Typer(
    help="Predictive maintenance: failure risk and remaining useful life per machine.",
    no_args_is_help=True,
)
app.add_typer(maintenance_app, name="maintenance")

_SIX_CONDITIONS = ("FD002", "FD004")  # the C-MAPSS subsets flown in six operating conditions


def split_names(values: list[str] | None, what: str) -> list[str]:
    """Repeatable and comma-separated options as one list.

    >>> split_names(["vibration,temperature", "current"], "--metrics")
    ['vibration', 'temperature', 'current']
    """
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{what} needs at least one name")
    return names


def parse_model_ref(spec: str) -> tuple[str, str]:
    """``NAME[@VERSION]`` as ``(name, version)``; the version defaults to ``latest``.

    >>> parse_model_ref("pump-risk@1.2.0"), parse_model_ref("pump-risk")
    (('pump-risk', '1.2.0'), ('pump-risk', 'latest'))
    """
    name, _, version = spec.partition("@")
    if not name:
        raise ConfigError(f"--model {spec!r} is not NAME or NAME@VERSION")
    return name, version or "latest"


def _registry(ctx: typer.Context) -> Any:
    from iotml.registry import ModelRegistry

    return ModelRegistry(cli_settings(ctx).home)


def _load(ctx: typer.Context, spec: str) -> MaintenanceModel:
    from iotml.maintenance.model import MaintenanceModel

    name, version = parse_model_ref(spec)
    return MaintenanceModel.load(_registry(ctx), name, version)


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            text = f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4g}"
        else:
            text = str(value)
        table.add_row(escape(key), text)
    return table


# -- train --------------------------------------------------------------------------------


@maintenance_app.command("train")
def train_cmd(
    ctx: typer.Context,
    log: Annotated[Path, typer.Option(help="Maintenance log CSV: device_id, failure_time, ...")],
    metrics: Annotated[
        list[str], typer.Option(help="Input metrics (comma-separated or repeated).")
    ],
    name: Annotated[str, typer.Option(help="Model name in the registry.")],
    version: Annotated[str, typer.Option(help="Model version, e.g. 1.0.0.")] = "1.0.0",
    task: Annotated[str, typer.Option(help="failure (risk within --horizon) or rul.")] = (
        "failure"
    ),
    horizon: Annotated[str, typer.Option(help="Failure within this long (task failure).")] = (
        "24h"
    ),
    cap: Annotated[
        str | None, typer.Option(help="Cap of the RUL target, e.g. 7d (task rul).")
    ] = None,
    every: Annotated[str, typer.Option(help="Resampling grid width.")] = "1m",
    windows: Annotated[
        list[str] | None, typer.Option(help="Feature windows, e.g. 15min,1h.")
    ] = None,
    model: Annotated[str, typer.Option(help="tree (interpretable) or boosting.")] = "tree",
    device: Annotated[
        list[str] | None, typer.Option(help="Train on this device only (repeatable).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First time used (ISO-8601).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the data used (ISO-8601).")] = None,
    cv: Annotated[int, typer.Option(min=0, help="Folds (by machine) for metrics; 0: none.")] = 3,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Train a model on the store's telemetry labelled by a maintenance log; save it."""
    with guard():
        from iotml.maintenance.labels import read_maintenance_log
        from iotml.maintenance.model import MaintenanceModel

        maintenance = MaintenanceModel(
            split_names(metrics, "--metrics"),
            task=task,
            every=parse_duration(every, "--every"),
            windows=split_names(windows or ["15min,1h"], "--windows"),
            horizon=parse_duration(horizon, "--horizon"),
            cap=None if cap is None else parse_duration(cap, "--cap"),
            model=model,
            cv=cv,
        )
        registry = _registry(ctx)
        with open_cli_store(ctx) as store:
            found = read_maintenance_log(log)
            result = _fit(maintenance, store, found, device, start, end)
        maintenance.save(registry, name, version)
    for problem in found.problems[:20]:
        console.print(f"[yellow]log line {problem.line} skipped:[/] {escape(problem.reason)}")
    if json_:
        console.print_json(orjson.dumps({"model": maintenance.ref, "metrics": result}).decode())
        return
    console.print(_metrics_table(f"trained {escape(maintenance.ref)} ({task})", result))


def _fit(
    model: MaintenanceModel, store: Any, log: Any, device: list[str] | None,
    start: str | None, end: str | None,
) -> dict[str, float]:  # fmt: skip
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task("training", total=None)
        return model.fit(
            store, log, device or None, parse_time(start, "--start"), parse_time(end, "--end"),
            progress=lambda text: progress.update(task, description=text),
        )  # fmt: skip


# -- predict ------------------------------------------------------------------------------


@maintenance_app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="NAME or NAME@VERSION from the registry.")],
    device: Annotated[list[str] | None, typer.Option(help="Only this device (repeatable).")] = None,
    at: Annotated[
        str | None, typer.Option(help="Score as of this time (ISO-8601; default: now).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Reasons shown per machine.")] = 3,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Each machine's latest failure risk or remaining useful life, and why."""
    with guard():
        maintenance = _load(ctx, model)
        with open_cli_store(ctx) as store:
            found = maintenance.score(store, device or None, parse_time(at, "--at"), top=top)
    if json_:
        body = {"model": maintenance.ref, "task": maintenance.task,
                "predictions": [_as_dict(p) for p in found]}  # fmt: skip
        console.print_json(orjson.dumps(body).decode())
        return
    if not found:
        console.print("no machine has recent readings of " + ", ".join(maintenance.metrics))
        return
    console.print(_prediction_table(maintenance, found))


def _as_dict(p: Prediction) -> dict[str, Any]:
    return {"device_id": p.device_id, "ts": p.ts.isoformat(), "value": p.value,
            "reasons": list(p.reasons), "features": list(p.features)}  # fmt: skip


def _prediction_table(model: MaintenanceModel, found: list[Prediction]) -> Table:
    rul = model.task == "rul"
    table = Table(title=f"{escape(model.ref)}: {'RUL' if rul else 'failure risk'} per machine")
    table.add_column("device")
    table.add_column("as of")
    table.add_column("RUL (h)" if rul else "risk", justify="right")
    table.add_column("why")
    for p in found:
        value = f"{p.value:.1f}" if rul else f"{p.value:.2f}"
        why = "\n".join(escape(r) for r in p.reasons)
        table.add_row(escape(p.device_id), p.ts.strftime("%Y-%m-%d %H:%M"), value, why)
    return table


# -- evaluate -----------------------------------------------------------------------------


@maintenance_app.command("evaluate")
def evaluate_cmd(
    dataset: Annotated[str, typer.Option(help="cmapss or ai4i.")],
    data_dir: Annotated[
        Path | None, typer.Option(help="C-MAPSS: folder with train_/test_/RUL_<subset>.txt.")
    ] = None,
    subset: Annotated[str, typer.Option(help="C-MAPSS subset, e.g. FD001.")] = "FD001",
    file: Annotated[Path | None, typer.Option(help="AI4I: the CSV file.")] = None,
    model: Annotated[str, typer.Option(help="AI4I: tree or boosting.")] = "tree",
    cap: Annotated[float, typer.Option(help="C-MAPSS: RUL cap of the training target.")] = 125.0,
    conditions: Annotated[
        int | None,
        typer.Option(help="C-MAPSS operating conditions (default: 6 for FD002/FD004, else 1)."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Benchmark protocols: C-MAPSS RMSE/PHM08 on the official test set, AI4I 5-fold CV."""
    with guard():
        if dataset == "cmapss":
            result = _evaluate_cmapss(data_dir, subset, cap, conditions)
        elif dataset == "ai4i":
            result = _evaluate_ai4i(file, model)
        else:
            raise ConfigError(f"--dataset {dataset!r} is not 'cmapss' or 'ai4i'")
    if json_:
        console.print_json(orjson.dumps(result).decode())
        return
    scalars = {k: v for k, v in result.items() if isinstance(v, int | float | str)}
    console.print(_metrics_table(f"{dataset} evaluation", scalars))


def _evaluate_cmapss(
    data_dir: Path | None, subset: str, cap: float, conditions: int | None
) -> dict[str, Any]:
    from iotml.datasets import load_cmapss
    from iotml.maintenance.evaluate import evaluate_cmapss

    if data_dir is None:
        raise ConfigError("--dataset cmapss needs --data-dir DIR (with train_FD00x.txt ...)")
    n = conditions if conditions is not None else 6 if subset.upper() in _SIX_CONDITIONS else 1
    result = evaluate_cmapss(load_cmapss(data_dir, subset), cap=cap, n_conditions=n)
    keep = {k: v for k, v in result.items() if k not in ("units", "true", "pred")}
    return {"dataset": "cmapss", "subset": subset, "conditions": n, **keep}


def _evaluate_ai4i(file: Path | None, model: str) -> dict[str, Any]:
    from iotml.datasets import read_ai4i
    from iotml.maintenance import ai4i_features
    from iotml.maintenance.evaluate import ai4i_classifier, evaluate_ai4i

    if file is None:
        raise ConfigError("--dataset ai4i needs --file PATH (an AI4I 2020 format CSV)")
    estimator = ai4i_classifier(model)
    data = read_ai4i(file)
    result = evaluate_ai4i(ai4i_features(data.X), data.y, estimator)
    cv = {f"cv_{k}": v for k, v in result["cv"].items() if k != "f1_per_fold"}
    split = {f"split_{k}": v for k, v in result["split"].items()}
    return {"dataset": "ai4i", "model": model, "folds": result["folds"],
            "seed": result["seed"], **cv, **split}  # fmt: skip


# -- plot ---------------------------------------------------------------------------------


@maintenance_app.command("plot")
def plot_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="NAME or NAME@VERSION from the registry.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    device: Annotated[list[str] | None, typer.Option(help="Only this device.")] = None,
    start: Annotated[str | None, typer.Option(help="From (ISO-8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Until (ISO-8601).")] = None,
    threshold: Annotated[float | None, typer.Option(help="Draw the alert threshold.")] = None,
) -> None:
    """Risk (or RUL) over time per machine, as the model sees the stored history (PNG)."""
    with guard():
        from iotml.maintenance.plots import plot_risk

        maintenance = _load(ctx, model)
        with open_cli_store(ctx) as store:
            frame = maintenance.history(
                store, device or None, parse_time(start, "--start"), parse_time(end, "--end")
            )
        if frame.empty:
            raise ConfigError("no machine has complete features in that range; nothing to plot")
        series = {str(d): (g["ts"].to_numpy(), g["value"].to_numpy())
                  for d, g in frame.groupby("device_id")}  # fmt: skip
        label = "RUL (h)" if maintenance.task == "rul" else "failure risk"
        path = plot_risk(series, output, threshold=threshold, ylabel=label)
    console.print(f"wrote {escape(str(path))} ({len(series)} machines)")
