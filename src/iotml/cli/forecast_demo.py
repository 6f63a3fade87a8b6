"""The live demo's forecasts: meter history, a model fitted on it, a table of what it says.

Before the live fleet starts, :func:`prepare_forecasts` writes three weeks of history for
the fleet's smart meters into the store — the same meters, simulated at real speed, one
reading every half hour up to now — fits a :class:`~iotml.forecast.model.ForecastModel`
(ridge: core dependencies only) on their power and saves it as a signed bundle in the
home's registry. The demo then runs a :class:`~iotml.pipeline.forecast.ForecastStage` in
the live pipeline, and :func:`forecasts_table` shows what it stored: every meter's next
hours with an interval.
"""

from __future__ import annotations

__all__ = ["DEMO_MODEL", "forecasts_table", "meter_history", "prepare_forecasts"]

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
from rich.markup import escape
from rich.table import Table

from iotml.forecast.model import ForecastModel
from iotml.pipeline.forecast import latest_forecast
from iotml.registry import ModelRegistry
from iotml.sim import Fleet, FleetSpec
from iotml.store import Store
from iotml.types import Batch

DEMO_MODEL = "demo-meter-power"
"""The registry name the demo saves its forecast model under (a new version each run)."""

_DAY_US = 86_400_000_000


def meter_history(
    spec: FleetSpec, end_us: int, *, days: float = 21.0, every_s: float = 1800.0
) -> Batch:
    """``days`` of the fleet's meter power up to ``end_us``, simulated at real speed.

    The fleet is ``spec``'s, with faults, broken messages and the speed-up turned off, so
    its meters are the live demo's meters living an ordinary three weeks.
    """
    calm = replace(spec, faulty_share=0.0, malformed_share=0.0, speedup=1.0)
    fleet = Fleet(calm)
    step_us = int(every_s * 1e6)
    start = end_us - int(days * _DAY_US)
    parts = [fleet.step(t) for t in range(start, end_us, step_us)]
    batch = Batch.concat(parts)
    meters = pc.starts_with(batch.device_id, "meter-")
    return batch.filter(pc.and_(meters, pc.equal(batch.metric, "power")))


def prepare_forecasts(
    store: Store, spec: FleetSpec, home: Path, now_us: int
) -> ForecastModel | None:
    """Write the meters' history, fit and save the demo's forecast model (``None``: no meters)."""
    if spec.meters == 0:
        return None
    history = meter_history(spec, now_us)
    store.write(history)
    meters = sorted(set(history.device_id.to_pylist()))
    store.set_units({(m, "power"): "kW" for m in meters})
    model = ForecastModel("power", interval=timedelta(hours=1), lookback=48, horizon=12)
    model.fit(store, meters, now_us - 21 * _DAY_US, now_us)
    registry = ModelRegistry(home)
    version = 1 + max((int(v.split(".")[0]) for v in registry.versions(DEMO_MODEL)), default=0)
    model.save(registry, DEMO_MODEL, f"{version}.0.0")
    return model


def forecasts_table(store: Store, devices: list[str], *, steps: int = 5) -> Table | None:
    """The latest stored power forecast of each meter: its next ``steps`` hours, each as
    point ± half the 80 % interval (conformal intervals are symmetric)."""
    found = [(d, f) for d in devices if (f := latest_forecast(store, d, "power")) is not None]
    if not found:
        return None
    first = found[0][1]
    table = Table(
        title=f"power forecast per meter, kW ± 80 % interval ({escape(first['model'])}, UTC)",
        header_style="bold",
    )
    table.add_column("meter")
    for ts in first["ts"][:steps]:
        table.add_column(ts[11:16], justify="right")
    for device, body in found:
        lows, highs = body["lower"]["0.8"], body["upper"]["0.8"]
        cells = [
            f"{p:.2f}±{(hi - lo) / 2:.2f}"
            for p, lo, hi in zip(body["point"][:steps], lows, highs, strict=False)
        ]
        table.add_row(escape(device), *cells)
    return table
