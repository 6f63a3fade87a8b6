"""False alarms of the default detector and alert rule on clean, realistic series.

A small version of ``benchmarks/bench_anomaly_quality.py false-alarms`` (same recipe:
1-minute sampling with timestamp jitter, a daily cycle, AR(1) noise, heavy-tailed
measurement noise, every other series quantised). The benchmark measures 0.64 alert
episodes per 10,000 readings on 20 M readings (1,000 series of 20,000). At this size
(100 series of 6,000: the warm-up weighs more) seeds 0-7 give 0.6 to 2.5; seed 0 gives
0.78, and the bound leaves room for that spread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from iotml.anomaly import AlertRule, make_detector
from iotml.types import Batch

T0 = 1_767_225_600_000_000
MINUTE = 60_000_000
BOUND_PER_10K = 3.0


def clean_series(
    series: int, readings: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """``(readings, series)`` timestamps and values; see the module docstring."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-50.0, 50.0, series)
    sd = np.exp(rng.uniform(np.log(0.1), np.log(10.0), series))
    amp, phase = rng.uniform(0.0, 3.0, series) * sd, rng.uniform(0.0, 2 * np.pi, series)
    phi = rng.uniform(0.3, 0.95, series)
    minutes = np.arange(readings, dtype=np.float64)[:, None]
    jitter = rng.uniform(-2.0, 2.0, (readings, series)) * 1e6
    ts = (T0 + minutes * MINUTE + jitter).astype(np.int64)
    shocks = rng.standard_normal((readings, series)) * sd * np.sqrt(1 - phi**2)
    noise = np.empty_like(shocks)
    noise[0] = rng.standard_normal(series) * sd
    for i in range(1, readings):
        noise[i] = phi * noise[i - 1] + shocks[i]
    x = level + amp * np.sin(2 * np.pi * minutes / 1440.0 + phase) + noise
    x += 0.3 * sd * rng.standard_t(4, (readings, series))
    step = np.where(np.arange(series) % 2 == 1, rng.uniform(0.05, 0.5, series) * sd, 0.0)
    x = np.where(step > 0, np.round(x / np.where(step > 0, step, 1.0)) * step, x)
    return ts, x


def test_default_detector_and_rule_stay_quiet_on_clean_series() -> None:
    series, readings, per = 100, 6000, 50
    ts, x = clean_series(series, readings, seed=0)
    detector, rule = make_detector("default"), AlertRule()
    ids = np.asarray([f"s{i:03d}" for i in range(series)], dtype=object)
    starts = 0
    for i in range(0, readings, per):
        t, v = ts[i : i + per].ravel(), x[i : i + per].ravel()
        batch = Batch.from_arrays(np.tile(ids, per), np.full(t.size, "value", object), t, v)
        scores = detector.update(batch)
        events, _ = rule.apply(batch, scores.score, scores.source)
        starts += events.table.column("kind").to_pylist().count("anomaly-start")
    per_10k = 1e4 * starts / (series * readings)
    assert per_10k <= BOUND_PER_10K, f"{per_10k:.2f} alerts per 10,000 clean readings"
