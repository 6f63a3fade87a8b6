"""Stuck: a sensor that freezes during the warm-up does not teach that freezing is normal."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from iotml.anomaly import Stuck
from iotml.types import Batch

T0 = 1_767_225_600_000_000
ALARM = 0.5  # score of p = 1e-6
F64 = npt.NDArray[np.float64]


def scores(v: F64, det: Stuck) -> F64:
    ts = T0 + np.arange(v.size, dtype=np.int64) * 60_000_000
    out: F64 = det.update(Batch.from_arrays(["d"] * v.size, ["x"] * v.size, ts, v)).score
    return out


def test_a_sensor_stuck_during_warmup_alarms_then_and_on_its_next_episode() -> None:
    v = np.random.default_rng(0).normal(20.0, 0.5, 700)  # analog: never repeats
    v[12:80] = v[12]  # stuck from reading 12, through the end of the 50-reading warm-up
    v[400:460] = v[400]  # stuck again, a shorter episode than the first
    s = scores(v, Stuck(warmup=50))
    assert (s[50:80] >= ALARM).all()  # judged by the 12 readings before it, once scored
    assert s[80:400].max() < ALARM
    hits = np.flatnonzero(s[400:460] >= ALARM)
    assert hits.size, "the second episode never alarmed"
    assert hits[0] <= 4  # the first episode was not learned as normal


def test_a_sensor_stuck_from_its_first_reading_is_constant_by_nature() -> None:
    v = np.r_[np.full(300, 7.0), np.random.default_rng(1).normal(7.0, 1.0, 100)]
    assert scores(v, Stuck(warmup=50)).max() == 0.0  # nothing before it to judge it by


def test_a_coarse_sensor_with_long_runs_in_warmup_stays_quiet() -> None:
    rng = np.random.default_rng(2)
    v = np.round(np.cumsum(rng.normal(0.0, 0.15, 3000)))  # a slow signal, 1-unit steps
    s = scores(v, Stuck(warmup=50))
    assert s.max() < ALARM


def test_state_of_a_warmup_episode_round_trips() -> None:
    v = np.random.default_rng(3).normal(0.0, 1.0, 200)
    v[10:70] = v[10]
    det = Stuck(warmup=50)
    scores(v[:60], det)
    copy = Stuck(warmup=50)
    copy.load_state(det.state())
    assert scores(v[60:], copy).tolist() == scores(v[60:], det).tolist()
