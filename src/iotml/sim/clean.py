"""Clean synthetic series for false-alarm checks: realistic noise, no faults at all.

Each series is sampled every minute with ±2 s timestamp jitter and has its own level and
spread, a daily cycle of 0-3 noise standard deviations, AR(1) noise (coefficient
0.3-0.95), Student-t(4) measurement noise of 0.3 sd, and every other series is quantised
to 0.05-0.5 sd (a sensor's resolution). Any alert raised on it is a false alarm.

>>> ts, x = clean_series(3, 5, seed=0)
>>> ts.shape, x.shape
((5, 3), (5, 3))
"""

from __future__ import annotations

__all__ = ["clean_series"]

import numpy as np
import numpy.typing as npt

_T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
_MINUTE = 60_000_000


def clean_series(
    series: int, readings: int, seed: int, *, start_us: int = _T0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Timestamps (µs) and values, each of shape ``(readings, series)``."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-50.0, 50.0, series)
    sd = np.exp(rng.uniform(np.log(0.1), np.log(10.0), series))
    amp, phase = rng.uniform(0.0, 3.0, series) * sd, rng.uniform(0.0, 2 * np.pi, series)
    phi = rng.uniform(0.3, 0.95, series)
    minutes = np.arange(readings, dtype=np.float64)[:, None]
    jitter = rng.uniform(-2.0, 2.0, (readings, series)) * 1e6
    ts = (start_us + minutes * _MINUTE + jitter).astype(np.int64)
    shocks = rng.standard_normal((readings, series)) * sd * np.sqrt(1 - phi**2)
    noise = np.empty_like(shocks)
    noise[0] = rng.standard_normal(series) * sd
    for i in range(1, readings):  # AR(1) is a recursion over time, vectorised over series
        noise[i] = phi * noise[i - 1] + shocks[i]
    x = level + amp * np.sin(2 * np.pi * minutes / 1440.0 + phase) + noise
    x += 0.3 * sd * rng.standard_t(4, (readings, series))
    step = np.where(np.arange(series) % 2 == 1, rng.uniform(0.05, 0.5, series) * sd, 0.0)
    x = np.where(step > 0, np.round(x / np.where(step > 0, step, 1.0)) * step, x)
    return ts, x
