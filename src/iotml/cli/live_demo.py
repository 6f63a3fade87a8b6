"""``iotml demo`` (live): run :func:`~iotml.cli.live.run_live` under a Rich live view."""

from __future__ import annotations

__all__ = ["live_demo"]

import asyncio
import signal
import time

import typer
from rich.live import Live
from rich.markup import escape

from iotml.cli.common import cli_settings, console, open_cli_store
from iotml.cli.forecast_demo import forecasts_table, prepare_forecasts
from iotml.cli.live import LiveRun, run_live
from iotml.cli.live_view import live_panel, summary_tables
from iotml.pipeline import Stage
from iotml.pipeline.forecast import ForecastStage
from iotml.sim import FleetSpec


def live_demo(ctx: typer.Context, spec: FleetSpec, duration_s: float) -> None:
    """Serve, simulate for ``duration_s`` (Ctrl-C ends it sooner), then report."""
    home = cli_settings(ctx).home
    truth = home / "sim-truth.jsonl"
    views: list[Live] = []

    def show(run: LiveRun) -> None:
        view = Live(get_renderable=lambda: live_panel(run), console=console, refresh_per_second=4)
        view.start()
        views.append(view)

    async def main() -> LiveRun:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        return await run_live(
            store, spec, duration_s=duration_s, truth_path=truth, on_start=show, stop_early=stop,
            stages=stages,
        )  # fmt: skip

    with open_cli_store(ctx) as store:
        with console.status("fitting a forecast model on three weeks of meter history"):
            forecast = prepare_forecasts(store, spec, home, time.time_ns() // 1000)
        stages: list[Stage] = []
        if forecast is not None:
            mae = forecast.metrics_["calib_mae"]
            console.print(
                f"forecast model {escape(forecast.ref)} fitted on {len(forecast.devices)} meters "
                f"(held-out MAE {mae:.2f} kW)"
            )
            stages.append(ForecastStage(forecast, store, every_s=max(duration_s / 2, 1.0)))
        try:
            run = asyncio.run(main())
        finally:
            for view in views:
                view.stop()
                console.print()
        dead = store.dead_letter_count()
        for table in summary_tables(run, dead):
            console.print(table)
        meters = forecasts_table(store, forecast.devices) if forecast is not None else None
        if meters is not None:
            console.print(meters)
    device = run.fleet.devices[0]
    console.print(
        f"\nGround truth: {escape(str(truth))}. Explore: [bold]iotml devices[/], "
        f"[bold]iotml query -d {escape(device)} -m vibration --every 10s[/], "
        "[bold]iotml deadletters[/], [bold]iotml serve[/] + [bold]iotml simulate[/]."
    )
    if forecast is not None and forecast.devices:
        console.print(f"Forecasts: [bold]iotml forecast show {escape(forecast.devices[0])}[/].")
