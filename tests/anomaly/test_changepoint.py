"""PageHinkley: level shifts found within a bounded delay, one bounded alarm each."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from iotml.anomaly import PageHinkley, p_to_score
from iotml.errors import ConfigError
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
ONSET = 500


def score(values: F64, det: PageHinkley | None = None) -> tuple[F64, PageHinkley]:
    """Scores of series ``i`` = row ``i`` of ``values``, one reading a second, as a matrix."""
    det = det or PageHinkley()
    n_series, n = values.shape
    ids = np.repeat(np.array([f"s{i}" for i in range(n_series)], dtype=object), n)
    ts = np.tile(np.arange(n, dtype=np.int64) * 10**6, n_series)
    b = Batch.from_arrays(ids, np.full(ids.size, "m", dtype=object), ts, values.ravel())
    return det.update(b).score.reshape(n_series, n), det


def shifted(k: float, n_series: int = 300, n: int = 1500, seed: int = 7) -> F64:
    v = np.random.default_rng(seed).normal(0.0, 1.0, (n_series, n))
    v[:, ONSET:] += k
    return v


# measured over 3,000 series each, delay in readings (median / 95th / 99th percentile / max):
# 1 sd 29 / 58 / 81 / 140, 2 sd 9 / 14 / 16 / 24, 4 sd 4 / 5 / 5 / 7 (delta = 0.5)
@pytest.mark.parametrize(
    ("k", "median_bound", "p95_bound", "max_bound"),
    [(1.0, 35, 70, 250), (2.0, 12, 18, 40), (-2.0, 12, 18, 40), (4.0, 5, 6, 10)],
)
def test_level_shifts_are_detected_within_a_bounded_delay(
    k: float, median_bound: int, p95_bound: int, max_bound: int
) -> None:
    alarm = score(shifted(k))[0][:, ONSET:] >= 0.5
    assert alarm.any(axis=1).all()
    delay = alarm.argmax(axis=1)
    assert np.median(delay) <= median_bound
    assert np.percentile(delay, 95) <= p95_bound
    assert delay.max() <= max_bound


@pytest.mark.parametrize("k", [1.0, 2.0, 4.0, -4.0])
def test_a_shift_raises_one_bounded_alarm_then_the_new_level_is_normal(k: float) -> None:
    scores, det = score(shifted(k))
    alarm = scores >= 0.5
    assert not alarm[:, :ONSET].any()
    assert alarm.sum(axis=1).max() <= det.max_run  # bounded: re-baselined, not everlasting
    assert not alarm[:, ONSET + 300 :].any()  # quiet at the new level
    n = det.n_series
    np.testing.assert_allclose(det.a["mean"][:n], k, atol=0.5)  # adopted the new level


def test_one_spike_is_not_a_level_shift() -> None:
    v = np.random.default_rng(2).normal(0.0, 1.0, (50, 800))
    v[:, 400] += 30.0
    scores, _ = score(v)
    assert scores.max() < 0.5


def test_clean_gaussian_series_stay_quiet() -> None:
    # 200 series x 5,000 readings; over 100 M readings (10,000 x 10,000): see the report
    v = np.random.default_rng(5).normal(3.0, 2.0, (200, 5000))
    det = PageHinkley()
    parts = [score(v[:, i : i + 500], det)[0] for i in range(0, 5000, 500)]
    s = np.concatenate(parts, axis=1)[:, det.warmup :]
    assert 1e4 * (s >= 0.5).mean() < 0.05  # nominal 0.01 per 10,000 (p = 1e-6)
    assert (s >= 0.25).mean() < 1e-3  # p = 1e-3: the bound holds with room (measured ~4e-4)
    assert (s >= 0.25).mean() > 1e-4  # ... but is not idly loose


def test_the_tail_probability_is_the_cusum_bound() -> None:
    det = PageHinkley(delta=0.5)
    at_half = np.log(2e6) / (2 * 0.5)  # 2·exp(-2·delta·h) = 1e-6
    np.testing.assert_allclose(p_to_score(det._p(np.array([0.0, at_half]))), [0.0, 0.5])
    assert det.alarm_at == pytest.approx(at_half)
    assert det.reset_at == pytest.approx(np.log(2e12))  # score 1
    assert PageHinkley(delta=1.0).reset_at == pytest.approx(np.log(2e12) / 2)


def test_a_smaller_delta_finds_smaller_shifts_sooner() -> None:
    v = shifted(0.6, n_series=100, n=2000)

    def first_alarm(det: PageHinkley) -> float:
        alarm = score(v, det)[0][:, ONSET:] >= 0.5
        return float(np.median(np.where(alarm.any(axis=1), alarm.argmax(axis=1), 10**6)))

    assert first_alarm(PageHinkley(delta=0.25)) < first_alarm(PageHinkley(delta=0.5))


def test_memory_per_series() -> None:
    assert PageHinkley().nbytes_per_series() == 72


@pytest.mark.parametrize(
    "kwargs", [{"delta": 0.0}, {"halflife": 0.0}, {"clip": 0.4}, {"reset_at": -1.0}]
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PageHinkley(**kwargs)  # type: ignore[arg-type]
