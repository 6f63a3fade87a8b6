"""Adaptive: seasonality found per series, calibration on clean correlated and heavy-tailed
series, gated learning, adoption of a lasting change."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from iotml.anomaly import Adaptive, AlertRule, default_detector, make_detector
from iotml.errors import ConfigError
from iotml.types import Batch

STEP_US = 300 * 10**6  # 5-minute readings
DAY = 288


def _batch(values: np.ndarray, series: int = 1, step_us: int = STEP_US) -> Batch:
    """``values`` of shape (readings, series), interleaved as they would arrive."""
    values = values.reshape(len(values), -1)
    n, k = values.shape
    ts = np.repeat(np.arange(n, dtype=np.int64) * step_us, k)
    ids = np.tile(np.asarray([f"s{i}" for i in range(k)], dtype=object), n)
    return Batch.from_arrays(ids, np.full(n * k, "v", dtype=object), ts, values.ravel())


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    e = rng.normal(0.0, np.sqrt(1 - phi * phi), (n, k))
    out = np.empty((n, k))
    out[0] = rng.normal(0.0, 1.0, k)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def _daily(n: int, k: int, amp: float = 5.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * np.arange(n) / DAY)[:, None] * np.ones((1, k))


def test_a_daily_cycle_is_modelled_and_a_series_without_one_stays_flat() -> None:
    rng = np.random.default_rng(1)
    n = 6 * DAY
    cyc = 20 + _daily(n, 1)[:, 0] + rng.normal(0, 0.3, n)
    noise = 20 + rng.normal(0, 0.3, n)
    det = Adaptive()
    det.update(_batch(np.stack([cyc, noise], axis=1)))
    assert det.model_of("s0", "v") == "daily"
    assert det.model_of("s1", "v") == "flat"


KNOWN_SHORT = pytest.mark.xfail(
    strict=True,
    reason="issue 17, open: on AR(1) with phi = 0.99 the drift statistic still alarms on "
    "about 0.1 % of clean readings (its spread is learned from too few independent values)",
)


@pytest.mark.parametrize(
    "kind",
    [
        "ar1-0.9",
        pytest.param("ar1-0.99", marks=KNOWN_SHORT),
        "daily+ar1",
        "student-t-3",
        "quantised",
        "random-walk",
    ],
)
def test_clean_series_stay_below_the_alarm_score(kind: str) -> None:
    """The promise of a score of 0.5 (p = 1e-6): over 40 series x 4,000 clean readings
    (160,000), essentially nothing reaches it."""
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    n, k = 4_000, 40
    if kind.startswith("ar1"):
        x = _ar1(rng, n, k, float(kind.split("-")[1]))
    elif kind == "daily+ar1":
        x = _daily(n, k) + _ar1(rng, n, k, 0.7) * 0.5
    elif kind == "student-t-3":
        x = rng.standard_t(3, (n, k))
    elif kind == "quantised":
        x = np.round(_daily(n, k, 3.0) + _ar1(rng, n, k, 0.5))
    else:
        x = np.cumsum(rng.normal(0, 0.1, (n, k)), axis=0)
    s = make_detector("adaptive").update(_batch(100.0 + x, k))
    assert np.mean(s.score >= 0.5) <= 2e-4, kind  # <= 32 of 160,000


def test_the_plus_15_degree_hour_on_a_daily_cycle_alerts() -> None:
    """The case the robust baseline missed (peak score 0.33): a +15 degree, 50-minute
    excursion on a +/-5 degree daily cycle with noise 0.3."""
    rng = np.random.default_rng(7)
    n = 10 * DAY
    v = 20 + _daily(n, 1)[:, 0] + rng.normal(0, 0.3, n)
    at = 9 * DAY + 100
    v[at : at + 10] += 15.0
    s = make_detector("adaptive").update(_batch(v))
    assert s.score[at] > 0.5
    assert s.score[: at - 1].max() < 0.5


def test_a_long_excursion_stays_flagged_and_is_not_learned() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(0, 1, 3_000)
    v[2_000:2_080] += 8.0  # 80 readings, shorter than adopt_after
    s = Adaptive(adopt_after=100).update(_batch(v))
    assert (s.score[2_000:2_080] > 0.5).mean() > 0.9
    assert s.score[2_120:].max() < 0.5  # back to normal: nothing was absorbed


def test_a_lasting_shift_is_adopted_after_adopt_after_readings() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(0, 1, 3_000)
    v[1_500:] += 10.0
    s = Adaptive(adopt_after=100).update(_batch(v))
    assert (s.score[1_500:1_590] > 0.5).all()
    assert s.score[1_700:].max() < 0.5


def test_a_small_lasting_shift_is_caught_by_the_drift_statistic() -> None:
    """A 2-sd shift: no one reading stands out (p ~ 0.05), the accumulated innovations do."""
    rng = np.random.default_rng(5)
    v = rng.normal(0, 1, 3_000)
    v[2_000:] += 2.0
    s = Adaptive().update(_batch(v))
    assert s.score[:2_000].max() < 0.5
    assert s.score[2_000:2_100].max() > 0.5


def test_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="daily_bins"):
        Adaptive(daily_bins=1)
    with pytest.raises(ConfigError, match="choose"):
        Adaptive(choose=0.0)
    with pytest.raises(ConfigError, match="gate"):
        Adaptive(gate=1.5)
    with pytest.raises(ConfigError, match="adopt_after"):
        Adaptive(adopt_after=0)
    with pytest.raises(ConfigError, match="spread_gate"):
        Adaptive(gate=0.5, spread_gate=0.6)


def test_a_faulty_sensor_spiking_every_hundred_readings_alerts_on_every_spike() -> None:
    """Spikes of 60-120 sds every 100 readings, the first one in the warm-up: learnt
    unclipped, that first spike inflated the spreads and each later one was learnt as a
    heavy tail (every spike scored 0.27-0.38 before the spreads were learnt robustly)."""
    rng = np.random.default_rng(11)
    v = 48.0 + rng.normal(0, 0.2, 3_000)
    at = np.arange(9, 3_000, 100)
    v[at] += rng.choice([-1.0, 1.0], at.size) * rng.uniform(12.0, 24.0, at.size)
    s = Adaptive().update(_batch(v))
    assert (s.score[at[1:]] > 0.5).all()
    quiet = np.ones(v.size, bool)
    quiet[at] = quiet[at + 1] = False
    assert s.score[100:][quiet[100:]].max() < 0.5


def test_an_adopted_run_takes_the_level_it_has_reached_not_its_mean() -> None:
    """A run gated for longer than ``adopt_after`` that moved on (down by 10 sds for 30
    readings, then up by 10 for good): the level adopted is where the run is now, so the
    new level is not flagged for a second ``adopt_after`` readings (adopting the run's
    mean, -10 x 0.3 + 10 x 0.7 = 4, left it 6 sds off and gated until reading 1,700)."""
    rng = np.random.default_rng(13)
    v = rng.normal(0, 1, 3_000)
    v[1_500:1_530] -= 10.0
    v[1_530:] += 10.0
    s = Adaptive(adopt_after=100).update(_batch(v))
    assert (s.score[1_500:1_590] > 0.5).all()
    assert s.score[1_610:].max() < 0.5


def test_a_shift_of_a_few_sds_does_not_hand_a_daily_series_to_the_flat_model() -> None:
    # a lasting shift of 4 sds is not gated (it scores below the gate): the daily model's
    # squared innovations are clipped in its error, so the flat model, whose AR term
    # follows a shift, does not look better for a while and take the series over
    rng = np.random.default_rng(3)
    n, at = 8 * DAY, 5 * DAY
    v = 20 + _daily(n, 1)[:, 0] + rng.normal(0, 0.5, n)
    v[at:] -= 2.0
    det = Adaptive()
    det.update(_batch(v[:at]))
    assert det.model_of("s0", "v") == "daily"
    models = set()
    for i in range(at, n, 6):  # half an hour at a time
        part = _batch(v[i : i + 6])
        det.update(Batch.from_arrays(part.device_id, part.metric, part.ts_us + i * STEP_US,
                                     part.values))  # fmt: skip
        models.add(det.model_of("s0", "v"))
    assert models == {"daily"}


def test_a_round_of_every_series_scores_the_same_in_any_order() -> None:
    # a round holding every series once is scored in slot order (slices, no gathers):
    # readings arriving in another order get exactly the scores they get in slot order
    rng = np.random.default_rng(4)
    n, k = 3 * DAY, 40
    v = 20 + _daily(n, k) + _ar1(rng, n, k, 0.8)
    v[2 * DAY + 7, 5] += 9.0
    ts = np.arange(n, dtype=np.int64) * STEP_US
    ids = np.asarray([f"s{i}" for i in range(k)], dtype=object)
    in_order, shuffled = make_detector("adaptive"), make_detector("adaptive")
    spike = np.zeros(0)
    for i in range(n):
        perm = rng.permutation(k)
        a = in_order.update(Batch.from_arrays(ids, ["v"] * k, np.full(k, ts[i]), v[i]))
        b = shuffled.update(Batch.from_arrays(ids[perm], ["v"] * k, np.full(k, ts[i]), v[i, perm]))
        np.testing.assert_array_equal(b.score, a.score[perm])
        np.testing.assert_array_equal(b.source, a.source[perm])
        if i == 2 * DAY + 7:
            spike = a.score
    assert spike[5] > 0.9  # the spike, scored the same either way
    assert np.delete(spike, 5).max() < 0.5


def test_a_round_without_every_series_scores_as_one_with_every_series() -> None:
    # the other code path: a detector that also holds a silent series gathers and
    # scatters its state by slot instead of slicing it; the scores must be the same
    rng = np.random.default_rng(6)
    n, k = 2 * DAY, 30
    v = 20 + _daily(n, k) + _ar1(rng, n, k, 0.8)
    v[DAY + 40 :, 3] += 6.0  # a lasting shift (gated, then adopted)
    v[DAY + 90, 7] = 1e160  # a wild reading
    ts = np.arange(n, dtype=np.int64) * STEP_US
    ids = np.asarray([f"s{i}" for i in range(k)], dtype=object)
    sliced, gathered = Adaptive(), Adaptive()
    gathered.update(Batch.from_arrays(["silent"], ["v"], [0], [1.0]))
    for i in range(n):
        batch = Batch.from_arrays(ids, ["v"] * k, np.full(k, ts[i]), v[i])
        np.testing.assert_array_equal(gathered.update(batch).score, sliced.update(batch).score)


def test_a_state_saved_after_growth_continues_exactly() -> None:
    """A detector that saw 100 series, then 5,000 more (its arrays regrown, the profiles
    kept phase bin by phase bin), saved and loaded into a fresh one: the two go on
    scoring the same, reading by reading, and keep learning their daily profiles."""
    rng = np.random.default_rng(8)
    k0, k1, n = 100, 5_100, 6 * DAY
    v = 20 + _daily(n, k1) + rng.normal(0, 0.3, (n, k1))
    ids = np.asarray([f"s{i}" for i in range(k1)], dtype=object)

    def rounds(det: Adaptive, first: int, last: int, k: int) -> list[np.ndarray]:
        out = []
        for i in range(first, last):
            perm = rng.permutation(k)
            ts = np.full(k, i * STEP_US, dtype=np.int64)
            out.append(det.update(Batch.from_arrays(ids[perm], ["v"] * k, ts, v[i, perm])).score)
        return out

    det = Adaptive()
    rounds(det, 0, DAY, k0)
    rounds(det, DAY, 4 * DAY + 100, k1)
    restored = Adaptive()
    restored.load_state(det.state())
    state = rng.bit_generator.state
    a = rounds(det, 4 * DAY + 100, n, k1)
    rng.bit_generator.state = state  # the same shuffles for the restored detector
    b = rounds(restored, 4 * DAY + 100, n, k1)
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert restored.model_of("s0", "v") == "daily" == restored.model_of("s5000", "v")


def test_rounds_given_by_the_caller_come_back_in_batch_order() -> None:
    """``scored`` with one round that is not the batch's own order (a caller's): scores
    in batch order, one per reading, as ``update`` gives them."""
    ids = np.asarray(["a", "b", "c"], dtype=object)
    given, own = Adaptive(warmup=0), Adaptive(warmup=0)
    for i in range(5):
        batch = Batch.from_arrays(ids, ["v"] * 3, np.full(3, i * STEP_US), [1.0, 2.0, 3.0 + i])
        slots = given.index.slots(batch.device_id, batch.metric)
        order = [np.array([2, 0, 1])]
        np.testing.assert_array_equal(given.scored(batch, slots, order).raw, own.update(batch).raw)


def test_a_burst_of_noise_is_flagged_by_the_volatility_statistic() -> None:
    # the noise four times louder for 200 readings, the level unchanged: single readings
    # rarely stand out (most are within 4 of the old sds), the average of their squares does
    rng = np.random.default_rng(5)
    n, at = 6 * DAY, 5 * DAY
    noise = rng.normal(0, 0.5, n)
    noise[at : at + 200] *= 4.0
    v = 20 + _daily(n, 1)[:, 0] + noise
    s = Adaptive().update(_batch(v))
    assert s.score[DAY:at].max() < 0.5
    assert (s.score[at : at + 200] >= 0.5).mean() > 0.2


def test_a_wild_reading_does_not_poison_the_series() -> None:
    # 1e160 squared overflows to inf, and 0 * inf is NaN: a gated reading must leave the
    # state exactly as it was, whatever its size
    rng = np.random.default_rng(8)
    v = 20 + rng.normal(0, 1, 600)
    v[400] = 1e160
    det = Adaptive()
    s = det.update(_batch(v))
    assert s.score[400] == 1.0
    assert np.isfinite(s.score).all()
    assert s.score[401:].max() < 0.5
    assert all(np.isfinite(arr[: len(det.index)]).all() for arr in det.a.values())


def test_asking_for_an_unknown_series_model_adds_nothing() -> None:
    det = Adaptive()
    det.update(_batch(np.zeros(10)))
    with pytest.raises(KeyError, match="no series"):
        det.model_of("nobody", "v")
    assert len(det.index) == 1


def test_a_ramp_soon_after_the_warm_up_is_not_read_as_a_heavy_tail() -> None:
    """A quadratic ramp to 60 sds over 150 readings, starting 30 readings after the
    warm-up, on 40 white-noise series: its innovations are biased, not heavy-tailed, so
    the kurtosis (of the innovations about their recent mean) must not fall and hide it.
    With the kurtosis of the raw innovations, 2 of the 40 ramps reached 0.5; with it
    centred, 27 did (the rest were learnt by the young series' fast-learning drift
    spread); with that spread's squares clipped (``_DRIFT_CLIP``, ``_DRIFT_CAP``) all 40 do."""
    rng = np.random.default_rng(21)
    k, start, length = 40, 60, 150
    v = rng.normal(0, 1, (start + length, k))
    v[start:] += 60 * np.linspace(0, 1, length)[:, None] ** 2
    s = Adaptive().update(_batch(v, k)).score.reshape(start + length, k)
    assert s[:start].max() < 0.5
    assert (s[start:] > 0.5).any(axis=0).sum() >= 36


def test_a_machine_that_wears_out_fails_and_restarts_again_and_again_warns_every_time() -> None:
    """Six cycles of a simulated machine's channel: healthy white noise, a quadratic wear
    ramp to 20 sds, a stop 15 sds below, a restart. Before, the first ramp alerted and no
    later one did (peaks 0.17-0.26): a run adopted between the stopped and the running
    level left an offset that the AR term learnt as a wander (phi 0.95), and the ramp had
    taught the drift statistic's spread its own rise. Now the levels average afresh after
    an adoption and the drift spread learns clipped squares."""
    rng = np.random.default_rng(17)
    parts, ramps, at = [], [], 0
    for c in range(6):
        healthy, ramp, down = 150 + 40 * c % 120, 120, 45
        parts += [np.zeros(healthy), 20 * np.linspace(0, 1, ramp) ** 2, np.full(down, -15.0)]
        ramps.append((at + healthy, at + healthy + ramp))
        at += healthy + ramp + down
    v = 10 + np.concatenate([*parts, np.zeros(200)]) + rng.normal(0, 1, at + 200)
    s = Adaptive().update(_batch(v)).score
    assert all(s[a:b].max() > 0.5 for a, b in ramps)
    assert s[ramps[0][0] - 100 : ramps[0][0]].max() < 0.5


def test_the_defaults_alert_on_the_plus_15_degree_hour() -> None:
    """The issue's case with what ``iotml detect`` and ``iotml serve`` use unconfigured:
    the default detector and ``AlertRule()`` open one alert, at the excursion."""
    rng = np.random.default_rng(7)
    n = 10 * DAY
    v = 20 + _daily(n, 1)[:, 0] + rng.normal(0, 0.3, n)
    at = 9 * DAY + 100
    v[at : at + 10] += 15.0
    batch = _batch(v)
    scores = default_detector().update(batch)
    events, _ = AlertRule().apply(batch, scores.score, scores.source)
    starts = [e["ts"] for e in events.to_pylist() if e["kind"] == "anomaly-start"]
    assert [round(t.timestamp()) for t in starts] == [int(batch.ts_us[at]) // 10**6]
