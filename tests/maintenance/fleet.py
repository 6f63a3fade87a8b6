"""A small simulated fleet with a maintenance log, shared by the maintenance tests."""

from __future__ import annotations

from datetime import timedelta

from iotml.sim import Fleet, FleetSpec, GroundTruth
from iotml.store import Store
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000_000
METRICS = ["vibration", "temperature", "speed", "current"]


def fleet(seed: int, machines: int = 8) -> Fleet:
    """Machines only, all of them wearing out and failing; published time = simulated time."""
    spec = FleetSpec(
        machines=machines, meters=0, thermostats=0, faulty_share=0.0, degrading_share=1.0,
        seed=seed, speedup=1.0,
    )  # fmt: skip
    return Fleet(spec)


def run(f: Fleet, store: Store, minutes: int, start: int = 0) -> None:
    """Step ``f`` once per simulated minute and store the readings in one write."""
    store.write(Batch.concat([f.step(T0 + (start + k) * MINUTE) for k in range(minutes)]))


def log_csv(truth: GroundTruth) -> str:
    """The fleet's failures as a maintenance log (failure and restart times in µs)."""
    rows = [f"{r.device_id},{r.start_us},{r.end_us}" for r in truth.select(type="failure")]
    return "\n".join(["device_id,failure_time,restart_time", *rows]) + "\n"


FIVE_MINUTES = timedelta(minutes=5)
