"""Data-quality detectors: each catches its fault within a bounded delay, clean data is quiet."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from iotml.anomaly import Gap, OutOfRange, RateOfChange, Stuck
from iotml.errors import ConfigError
from iotml.types import Batch

T0 = 1_767_225_600_000_000
ALARM = 0.5  # score of p = 1e-6
F64 = npt.NDArray[np.float64]


def one(values: npt.ArrayLike, t_s: npt.ArrayLike, device: str = "d", metric: str = "x") -> Batch:
    v = np.asarray(values, dtype=np.float64)
    ts = T0 + np.round(np.asarray(t_s, dtype=np.float64) * 1e6).astype(np.int64)
    return Batch.from_arrays([device] * v.size, [metric] * v.size, ts, v)


def first_alarm(score: F64, start: int) -> int:
    """Readings from ``start`` to the first score at or above the alarm level."""
    hits = np.flatnonzero(score[start:] >= ALARM)
    assert hits.size, "never alarmed"
    return int(hits[0])


def jittered_times(n: int, rng: np.random.Generator, period: float = 1.0) -> F64:
    return np.cumsum(period * rng.uniform(0.5, 1.5, n))


# -- OutOfRange -----------------------------------------------------------------------------


def test_out_of_range_per_metric_in_range_widths() -> None:
    det = OutOfRange({"temp": (-40.0, 125.0), "hum": (0.0, 100.0)})
    b = Batch.concat(
        [
            one([20.0, 125.0, 150.0, -205.0], [0, 1, 2, 3], metric="temp"),
            one([300.0], [0], device="new", metric="temp"),  # a first reading is judged too
            one([50.0, 0.0, 101.0, 150.0], [0, 1, 2, 3], metric="hum"),
            one([1e9, -1e9, 1e9, 1e9], [0, 1, 2, 3], metric="rpm"),  # no range: never scored
        ]
    )
    s = det.update(b)
    assert s.raw.tolist() == [0.0, 0.0, 25 / 165, 1.0, 175 / 165, 0.0, 0.0, 0.01, 0.5, 0, 0, 0, 0]
    # bounds are inclusive; outside scores 1 (a hard rule), with no warm-up
    assert s.score.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    assert s.ready.all()


def test_out_of_range_one_sided_and_new_series_later() -> None:
    det = OutOfRange({"count": (0.0, float("inf"))})
    det.update(one([1.0, 2.0], [0, 1], device="a", metric="count"))
    s = det.update(one([3.0, -2.0, 5.0], [0, 1, 2], device="b", metric="count"))
    assert s.raw.tolist() == [0.0, 2.0, 0.0]  # one-sided: in units of max(|bound|, 1)
    assert s.score.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("bad", [(5.0, 1.0), (float("nan"), 1.0), ("low", 1.0), (1.0,)])
def test_out_of_range_rejects_bad_ranges(bad: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="ranges\\['t'\\]"):
        OutOfRange({"t": bad})


# -- Stuck --------------------------------------------------------------------------------


def test_stuck_analog_sensor_caught_after_a_few_repeats() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 0.3, 600)
    v[500:] = v[499]  # frozen from reading 499 on
    s = Stuck().update(one(v, np.arange(600.0)))
    assert s.score[:500].max() < 0.2
    assert first_alarm(s.score, 500) <= 4  # at most 4 repeats of a value that never repeats
    assert (s.score[510:] == 1.0).all()  # and the alarm lasts while the sensor is stuck


def test_stuck_counter_that_repeats_needs_a_longer_run_and_does_not_false_alarm() -> None:
    rng = np.random.default_rng(1)
    steps = rng.random(3000) < 0.2  # an integer counter: changes in 1 reading of 5
    v = np.cumsum(steps).astype(np.float64)
    v[2500:] = v[2499]  # it stops counting
    s = Stuck().update(one(v, np.arange(3000.0)))
    assert s.score[:2500].max() < ALARM  # its own long runs (up to ~30) are normal
    k = first_alarm(s.score, 2500)
    assert 30 <= k <= 100  # q ≈ 0.8: p = 0.8**(k - 1) reaches 1e-6 near k = 63


def test_stuck_alarm_ends_when_the_value_moves_and_tolerance_counts_near_repeats() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(0.0, 1.0, 300)
    v[200:230] = 5.0 + rng.uniform(-0.01, 0.01, 30)  # frozen, with a last-digit flicker
    exact = Stuck(warmup=50).update(one(v, np.arange(300.0)))
    loose = Stuck(warmup=50, tolerance=0.05).update(one(v, np.arange(300.0)))
    assert exact.score.max() < ALARM
    assert first_alarm(loose.score, 200) <= 6
    assert loose.score[231:].max() < ALARM


def test_stuck_constant_by_nature_never_alarms() -> None:
    v = np.r_[np.zeros(500), np.ones(2000)]  # a switch that rarely flips
    s = Stuck().update(one(v, np.arange(2500.0)))
    assert s.score.max() == 0.0


def test_stuck_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="min_repeat"):
        Stuck(min_repeat=0.5, max_repeat=0.4)
    with pytest.raises(ConfigError, match="tolerance"):
        Stuck(tolerance=-1.0)


# -- Gap ----------------------------------------------------------------------------------


def test_gap_of_ten_intervals_is_flagged_by_silent_then_on_the_next_reading() -> None:
    rng = np.random.default_rng(3)
    t = jittered_times(200, rng, period=2.0)
    t[150:] += 20.0  # a 20 s silence in a 2 s series
    det = Gap()
    before = det.update(one(np.zeros(150), t[:150]))
    assert before.score.max() < ALARM
    last_us = int(T0 + round(t[149] * 1e6))
    assert det.silent(last_us + 2_000_000).keys == []  # one interval later: not silent
    quiet = det.silent(last_us + 20_000_000)  # the silence, while it lasts
    assert quiet.keys == [("d", "x")]
    assert quiet.score[0] >= ALARM
    assert quiet.gap_s.tolist() == pytest.approx([20.0])
    after = det.update(one(np.zeros(50), t[150:]))
    assert after.score[0] >= ALARM  # the reading that ends the silence
    assert after.raw[0] == pytest.approx((t[150] - t[149]) / 2.0, rel=0.2)
    assert after.score[1:].max() < ALARM  # and the series is back to normal at once


@pytest.mark.parametrize(
    "draw",
    [
        lambda r, n: r.uniform(0.5, 1.5, n),  # ±50 % jitter
        lambda r, n: r.lognormal(0.0, 0.4, n),  # multiplicative jitter
        lambda r, n: r.exponential(1.0, n),  # Poisson arrivals: the most irregular
    ],
    ids=["uniform", "lognormal", "poisson"],
)
def test_gap_quiet_under_irregular_sampling(draw: object) -> None:
    rng = np.random.default_rng(4)
    t = np.cumsum(draw(rng, 5000))  # type: ignore[operator]
    s = Gap().update(one(np.zeros(5000), t))
    assert s.score.max() < ALARM


def test_gap_judges_each_series_by_its_own_rate() -> None:
    fast = one(np.zeros(400), np.arange(400) * 1.0, metric="fast")
    slow = one(np.zeros(40), np.arange(40) * 60.0, metric="slow")  # 60 s is normal here
    det = Gap(warmup=10)
    s = det.update(Batch.concat([fast, slow]).sort())
    assert s.score.max() < ALARM
    now = T0 + 400 * 10**6 + 60 * 10**6  # a minute after the fast series' last reading
    assert [k[1] for k in det.silent(now).keys] == ["fast"]


def test_gap_warm_up_counts_intervals() -> None:
    t = np.r_[np.arange(5.0), 100.0]
    s = Gap(warmup=4).update(one(np.zeros(6), t))
    assert s.ready.tolist() == [False] * 5 + [True]  # ready after 4 intervals (5 readings)
    assert s.score[-1] == 1.0
    assert Gap(warmup=20).silent(T0).keys == []


# -- RateOfChange -------------------------------------------------------------------------


def test_rate_step_is_caught_and_a_ramp_at_normal_rate_is_not() -> None:
    rng = np.random.default_rng(5)
    t = jittered_times(1000, rng)
    noise = rng.normal(0.0, 0.5, 1000)
    level = np.where(np.arange(1000) < 400, 10.0, 10.0 + 0.3 * (t - t[400]))  # ramp from 400
    level = np.minimum(level, 100.0)
    step = level.copy()
    step[800:] += 8.0  # a step of 16 noise SDs
    ramp = RateOfChange().update(one(level + noise, t))
    assert ramp.score.max() < ALARM
    jump = RateOfChange().update(one(step + noise, t))
    assert first_alarm(jump.score, 800) == 0  # on the reading that jumps
    assert jump.score[801:].max() < ALARM  # the new level is not a new rate


def test_rate_uses_the_configured_maximum_per_metric() -> None:
    det = RateOfChange({"temp": 0.5}, warmup=2)
    temp = one([20.0, 20.4, 20.8, 22.0, 22.1], [0, 1, 2, 3, 4], metric="temp")
    s = det.update(temp)
    assert s.raw.tolist() == pytest.approx([0.0, 0.8, 0.8, 2.4, 0.2])
    assert s.score.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_rate_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="max_rate\\['t'\\]"):
        RateOfChange({"t": 0.0})
    with pytest.raises(ConfigError, match="halflife"):
        RateOfChange(halflife=0)


# -- all of them on clean data --------------------------------------------------------------


def test_clean_fleet_stays_quiet() -> None:
    rng = np.random.default_rng(6)
    parts = []
    for k in range(20):
        n = 2000
        t = jittered_times(n, rng, period=float(rng.choice([1.0, 10.0, 60.0])))
        v = 20.0 + 5.0 * np.sin(t / 3600.0) + rng.normal(0.0, 0.2, n)
        if k % 4 == 0:
            v = np.round(v)  # coarse integer readings repeat often
        parts.append(one(v, t, device=f"dev-{k}", metric="temp"))
    batch = Batch.concat(parts).sort()
    for det in (OutOfRange({"temp": (-40.0, 85.0)}), Stuck(), Gap(), RateOfChange()):
        s = det.update(batch)
        assert s.score.max() < ALARM, det.name


def test_repeated_timestamps_do_not_teach_gap_or_rate_a_tiny_interval() -> None:
    t = np.r_[np.arange(5.0), 4.0, np.arange(5.0, 60.0)]  # reading 5 repeats a timestamp
    v = np.random.default_rng(7).normal(0.0, 1.0, t.size)
    gap = Gap(warmup=10).update(one(v, t))
    rate = RateOfChange(warmup=10).update(one(v, t))
    assert gap.score.max() == 0.0
    assert rate.score[10:].max() < ALARM


def test_state_round_trips_with_a_one_sided_range() -> None:
    det = OutOfRange({"count": (0.0, float("inf"))})
    det.update(one([1.0, 2.0], [0, 1], metric="count"))
    restored = OutOfRange({"count": (0.0, float("inf"))})
    restored.load_state(det.state())
    assert restored.update(one([-1.0], [2], metric="count")).score.tolist() == [1.0]
