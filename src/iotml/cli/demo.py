"""``iotml demo``: a live fleet through ``iotml serve``, or a week of history imported.

Everything runs on embedded defaults (DuckDB under the data directory). The default is
live (:mod:`iotml.cli.live`): an in-process server with the embedded broker, a simulated
fleet publishing to it for a bounded time, a live view and a report. ``--history`` runs
the offline demo instead, through the same path as ``iotml import``: the history is
written as the files users have — SenML JSON, wide CSV, long Parquet — plus an upload
with typical faults, and each file is imported.
"""

from __future__ import annotations

__all__ = ["demo_cmd", "history_demo", "write_demo_files"]

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.markup import escape
from rich.table import Table

from iotml.cli.common import cli_settings, command, console, open_cli_store, parse_duration
from iotml.cli.data import _report
from iotml.cli.inspect import device_table
from iotml.cli.render import format_cell, rich_table
from iotml.codecs import encode_csv, encode_parquet, encode_senml_json
from iotml.ingest import ingest_file
from iotml.sim import FleetHistory, FleetSpec, fleet_history
from iotml.store import Store
from iotml.summary import findings, summarize
from iotml.types import Batch


def _device_batch(history: FleetHistory, device: str) -> Batch:
    return history.batch.filter(pc.equal(history.batch.device_id, device))


def _faulty_upload(start_us: int) -> bytes:
    """A gateway upload in flat JSON with the faults real uploads contain."""
    t = start_us // 1_000_000
    records = [
        {"device_id": "gateway-07", "ts": t, "temperature": 19.5, "humidity": 52.0},
        {"device_id": "gateway-07", "ts": t + 60, "temperature": "warm"},
        {"device_id": "gateway-07", "ts": t + 120, "temperature": "NaN"},
        {"device_id": "gateway-07", "ts": t + 180, "humidity": None},
        {"device_id": "gateway-07", "ts": t + 10 * 365 * 86_400, "temperature": 20.1},
        {"device_id": "gateway-07", "ts": t + 240, "temperature": 19.8, "humidity": 51.0},
    ]
    return orjson.dumps(records)


def write_demo_files(history: FleetHistory, folder: Path) -> list[Path]:
    """Write the history as one file per device in the format its kind would use."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    devices = pc.unique(history.batch.device_id).to_pylist()
    for device in sorted(devices):
        part = _device_batch(history, device)
        if device.startswith("pump"):
            path = folder / f"{device}.senml.json"
            units = {k: v for k, v in history.units.items() if k[0] == device}
            path.write_bytes(encode_senml_json(part, units=units))
        elif device.startswith("meter"):
            path = folder / f"{device}.csv"
            path.write_bytes(encode_csv(part, layout="wide"))
        else:
            path = folder / f"{device}.parquet"
            path.write_bytes(encode_parquet(part))
        paths.append(path)
    upload = folder / "gateway-upload.json"
    upload.write_bytes(_faulty_upload(int(history.batch.ts_us.min())))
    truncated = folder / "press-08-truncated.csv"
    part = _device_batch(history, devices[0]).slice(0, 50)
    press = Batch.from_arrays(["press-08"] * len(part), part.metric, part.ts_us, part.values)
    csv = encode_csv(press, layout="wide")
    truncated.write_bytes(csv[: len(csv) - 25])  # a transfer cut off mid-line
    return [*paths, upload, truncated]


def _injected(history: FleetHistory, metrics: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """Injected faults per series (a device-wide fault counts for each of its metrics)."""
    out: dict[tuple[str, str], str] = {}
    for f in history.faults:
        for metric in metrics[f["device"]] if f["metric"] == "*" else [f["metric"]]:
            out[(f["device"], metric)] = f"{f['fault']} from {f['start'][:16]}"
    return out


def _findings_table(summary: pa.Table, history: FleetHistory) -> Table:
    table = Table(title="what the analysis found, beside what was injected", header_style="bold")
    for name in ("series", "found", "injected"):
        table.add_column(name)
    rows = {(r["device_id"], r["metric"]): r for r in summary.to_pylist()}
    metrics: dict[str, list[str]] = {}
    for device, metric in rows:
        metrics.setdefault(device, []).append(metric)
    injected = _injected(history, metrics)
    for key in sorted(rows):
        found = findings(rows[key])
        if found or key in injected:
            table.add_row("/".join(key), "; ".join(found) or "—", injected.get(key, "—"))
    return table


@command("demo")
def demo_cmd(
    ctx: typer.Context,
    duration: Annotated[str, typer.Option(help="How long the live fleet runs.")] = "60s",
    machines: Annotated[int, typer.Option(min=0, help="Machines (MQTT).")] = 8,
    meters: Annotated[int, typer.Option(min=0, help="Smart meters (HTTP).")] = 8,
    thermostats: Annotated[int, typer.Option(min=0, help="Thermostats (MQTT).")] = 8,
    speedup: Annotated[
        float, typer.Option(min=1, help="Simulated seconds per real second.")
    ] = 600.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    history: Annotated[
        bool, typer.Option("--history", help="Import a generated history instead (offline).")
    ] = False,
    days: Annotated[float, typer.Option(min=1, help="--history: days to generate.")] = 7.0,
    devices: Annotated[int, typer.Option(min=3, help="--history: devices.")] = 6,
) -> None:
    """Run a simulated fleet through a live server and report what was caught."""
    if not history:
        from iotml.cli.live_demo import live_demo  # needs the mqtt and api extras

        spec = FleetSpec(
            machines=machines, meters=meters, thermostats=thermostats, speedup=speedup,
            malformed_share=0.02, seed=seed,
        )  # fmt: skip
        live_demo(ctx, spec, parse_duration(duration, "--duration").total_seconds())
        return
    history_demo(ctx, days=days, devices=devices, seed=seed)


def history_demo(ctx: typer.Context, *, days: float, devices: int, seed: int) -> None:
    """Generate a fleet history, import it as real files, and print what it shows."""
    history = fleet_history(devices=devices, days=days, seed=seed)
    with open_cli_store(ctx) as store:
        folder = cli_settings(ctx).home / "demo-files"
        console.rule("1 · import the fleet's files")
        for path in write_demo_files(history, folder):
            _report(path, ingest_file(store, path))
        batch = store.query()
        console.rule("2 · devices")
        console.print(rich_table(device_table(store)))
        console.rule("3 · series health")
        summary = summarize(batch)
        console.print(_findings_table(summary, history))
        worst = max(summary.to_pylist(), key=lambda r: abs(r["late_shift_sigma"]))
        console.rule(f"4 · {worst['device_id']}/{worst['metric']}, hourly means of the last day")
        _print_last_day(store, worst["device_id"], worst["metric"])
        console.rule("5 · dead letters")
        console.print(rich_table(store.dead_letters().select(["source", "record_index", "reason"])))
    console.print(
        f"\n{len(batch):,} readings stored. Explore: [bold]iotml devices[/], "
        f"[bold]iotml query -d {escape(worst['device_id'])} -m {worst['metric']} --every 1h[/], "
        "[bold]iotml deadletters[/]."
    )


def _print_last_day(store: Store, device: str, metric: str) -> None:
    agg = store.aggregate(device, metric, timedelta(hours=1))
    tail = agg.slice(max(0, agg.num_rows - 24))
    means = tail.column("mean").to_numpy()
    lo, hi = float(np.min(means)), float(np.max(means))
    for row in tail.to_pylist():
        width = 1 + int(30 * (row["mean"] - lo) / (hi - lo or 1.0))
        console.print(f"{format_cell(row['bucket'])}  {row['mean']:8.2f}  {'█' * width}")
