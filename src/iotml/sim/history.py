"""A generated history for a small mixed fleet, with faults whose location is known.

Device kinds differ by data, not code: :data:`CHANNELS` lists each kind's channels with
their level, daily swing, noise and unit. On top of the normal behaviour the generator
injects the faults users care about — a machine degrading, a sensor stuck at one value, a
device offline for a while — and returns where it put them, so an analysis can be checked
against the truth.

>>> h = fleet_history(devices=3, days=1, every_s=300, seed=1)
>>> len(h.batch), sorted(h.units)[:1]
(2547, [('meter-02', 'frequency')])
"""

from __future__ import annotations

__all__ = ["CHANNELS", "Channel", "FleetHistory", "fleet_history"]

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from iotml.types import Batch

_DAY_S = 86_400.0
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Channel:
    """One sensor channel of a device kind: ``level + swing·daily cycle + noise``."""

    metric: str
    unit: str
    level: float
    swing: float
    noise: float


CHANNELS: dict[str, tuple[Channel, ...]] = {
    "pump": (
        Channel("temperature", "Cel", 48.0, 3.0, 0.4),
        Channel("vibration", "mm/s", 2.2, 0.2, 0.15),
        Channel("power", "kW", 5.5, 1.5, 0.2),
    ),
    "meter": (
        Channel("power", "kW", 1.2, 0.9, 0.15),
        Channel("voltage", "V", 230.0, 2.0, 0.8),
        Channel("frequency", "Hz", 50.0, 0.0, 0.02),
    ),
    "thermostat": (
        Channel("temperature", "Cel", 21.0, 1.5, 0.1),
        Channel("humidity", "%RH", 45.0, 5.0, 1.0),
        Channel("valve", "%", 35.0, 20.0, 3.0),
    ),
}

_KINDS = tuple(CHANNELS)


@dataclass(frozen=True, slots=True)
class FleetHistory:
    """Readings, their units, and the faults that were injected (what, where, when)."""

    batch: Batch
    units: dict[tuple[str, str], str]
    faults: list[dict[str, str]] = field(default_factory=list)


def _signal(
    ch: Channel, t_s: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    daily = np.sin(2 * np.pi * (t_s / _DAY_S - 0.25))  # peaks mid-afternoon UTC
    return ch.level + ch.swing * daily + rng.normal(0.0, ch.noise, t_s.size)


def _iso(ts_us: int) -> str:
    return str(np.datetime64(ts_us, "us")) + "Z"


def fleet_history(
    *,
    devices: int = 6,
    days: float = 7.0,
    every_s: float = 60.0,
    start_us: int = 1_767_225_600 * _US,  # 2026-01-01T00:00:00Z
    seed: int = 0,
) -> FleetHistory:
    """Generate ``days`` of readings every ``every_s`` seconds (±10 % jitter) per channel.

    Devices cycle through the kinds (pump, meter, thermostat). With at least three
    devices, the first pump degrades (vibration and temperature climb over the last
    quarter), the first thermostat's humidity sensor sticks for a tenth of the period, and
    the first meter goes offline for a twentieth of it.
    """
    rng = np.random.default_rng(seed)
    n = int(days * _DAY_S / every_s)
    ids, metrics, stamps, values = [], [], [], []
    units: dict[tuple[str, str], str] = {}
    faults: list[dict[str, str]] = []
    for i in range(devices):
        kind = _KINDS[i % len(_KINDS)]
        device = f"{kind}-{i + 1:02d}"
        jitter = rng.uniform(-0.1, 0.1, n) * every_s
        t_s = np.arange(n) * every_s + jitter
        ts = start_us + np.round(t_s * _US).astype(np.int64)
        keep = np.ones(n, dtype=bool)
        if i == 1 and devices >= 3:  # the first meter drops off the network
            lo, hi = int(n * 0.60), int(n * 0.65)
            keep[lo:hi] = False
            faults.append(
                {
                    "device": device,
                    "metric": "*",
                    "fault": "offline",
                    "start": _iso(int(ts[lo])),
                    "end": _iso(int(ts[hi])),
                }
            )
        for ch in CHANNELS[kind]:
            v = _signal(ch, t_s, rng)
            v = _inject(i, devices, device, ch, v, ts, faults)
            ids.append(np.full(keep.sum(), device, dtype=object))
            metrics.append(np.full(keep.sum(), ch.metric, dtype=object))
            stamps.append(ts[keep])
            values.append(v[keep])
            units[(device, ch.metric)] = ch.unit
    batch = Batch.from_arrays(
        np.concatenate(ids),
        np.concatenate(metrics),
        np.concatenate(stamps),
        np.concatenate(values),
    )
    return FleetHistory(batch=batch, units=units, faults=faults)


def _inject(
    i: int,
    devices: int,
    device: str,
    ch: Channel,
    v: npt.NDArray[np.float64],
    ts: npt.NDArray[np.int64],
    faults: list[dict[str, str]],
) -> npt.NDArray[np.float64]:
    n = v.size
    if devices < 3:
        return v
    if i == 0 and ch.metric in ("vibration", "temperature"):  # bearing wear on pump-01
        lo = int(n * 0.75)
        ramp = np.linspace(0.0, 1.0, n - lo) ** 2
        v = v.copy()
        v[lo:] += ramp * (4.0 if ch.metric == "vibration" else 9.0)
        faults.append(
            {
                "device": device,
                "metric": ch.metric,
                "fault": "degradation",
                "start": _iso(int(ts[lo])),
                "end": _iso(int(ts[-1])),
            }
        )
    if i == 2 and ch.metric == "humidity":  # a stuck humidity sensor
        lo, hi = int(n * 0.30), int(n * 0.40)
        v = v.copy()
        v[lo:hi] = round(float(v[lo]), 1)
        faults.append(
            {
                "device": device,
                "metric": ch.metric,
                "fault": "stuck",
                "start": _iso(int(ts[lo])),
                "end": _iso(int(ts[hi])),
            }
        )
    return v
