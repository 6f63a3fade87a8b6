"""False alarms of the default detector and alert rule on clean, realistic series.

A small version of ``benchmarks/bench_anomaly_quality.py false-alarms`` (same recipe:
1-minute sampling with timestamp jitter, a daily cycle, AR(1) noise, heavy-tailed
measurement noise, every other series quantised). The benchmark measures 0.50 alert
episodes per 10,000 readings on 20 M readings (1,000 series of 20,000). At this size
(100 series of 6,000: the warm-up weighs more) seeds 0-7 give 0.42 to 0.73; seed 0 gives
0.57, and the bound leaves room for that spread. (Seed 3 gave 6.07 while
``RobustBaseline``'s spread could start far too small and, gated, never grow.)
"""

from __future__ import annotations

import numpy as np

from iotml.anomaly import AlertRule, make_detector
from iotml.sim import clean_series
from iotml.types import Batch

BOUND_PER_10K = 1.5


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
