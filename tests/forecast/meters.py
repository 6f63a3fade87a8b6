"""Synthetic smart-meter power for the forecast tests: a daily cycle per meter plus noise."""

from __future__ import annotations

import numpy as np

from iotml.store import Store
from iotml.types import Batch

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000_000
DAY = 24 * HOUR


def meter_batch(
    device: str,
    start_us: int,
    end_us: int,
    *,
    every_s: int = 900,
    level: float = 1.0,
    seed: int = 0,
) -> Batch:
    """Power (kW) of one meter every ``every_s`` seconds in ``[start_us, end_us)``."""
    ts = np.arange(start_us, end_us, every_s * 1_000_000, dtype=np.int64)
    hours = ts / HOUR
    rng = np.random.default_rng(seed)
    power = level + 0.6 * np.sin(2 * np.pi * (hours % 24) / 24) + rng.normal(0, 0.08, len(ts))
    return Batch.from_arrays([device] * len(ts), ["power"] * len(ts), ts, power)


def write_meters(store: Store, devices: list[str], days: float = 20.0, start_us: int = T0) -> int:
    """Write ``days`` of power for each meter; returns the end of the history (µs)."""
    end = start_us + int(days * DAY)
    for i, device in enumerate(devices):
        store.write(meter_batch(device, start_us, end, level=1.0 + 0.5 * i, seed=i))
    return end
