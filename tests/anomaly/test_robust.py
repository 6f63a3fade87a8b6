"""RobustBaseline: gated learning, adoption of a new normal, the spread floor."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from iotml.anomaly import RobustBaseline
from iotml.errors import ConfigError
from iotml.types import Batch

F64 = npt.NDArray[np.float64]


def _scores(det: RobustBaseline, v: F64, t0: int = 0) -> F64:
    n = v.size
    b = Batch.from_arrays(["d"] * n, ["m"] * n, (t0 + np.arange(n)) * 10**6, v)
    out: F64 = det.update(b).score
    return out


def _noise(n: int, seed: int = 0) -> F64:
    out: F64 = np.random.default_rng(seed).normal(10.0, 1.0, n)
    return out


def test_a_long_anomaly_is_not_absorbed_before_it_ends() -> None:
    v = _noise(1000)
    v[500:850] += 9.0  # beyond the gate (|z| > 7); shorter than adopt_after (400)
    s = _scores(RobustBaseline(halflife=200, warmup=100), v)
    assert (s[500:850] > 0.25).mean() > 0.95
    assert (s[840:850] > 0.25).all()  # the end is as anomalous as the start
    assert (s[860:] < 0.25).mean() > 0.99  # and the old normal is still the baseline


def test_an_anomaly_under_the_gate_fades() -> None:
    v = _noise(1000)
    v[500:850] += 6.0  # |z| = 6: under the default gate (score 1, |z| > 7), so learned
    s = _scores(RobustBaseline(halflife=200, warmup=100), v)
    assert (s[840:850] > 0.25).mean() < 0.5


def test_a_permanent_change_is_adopted_after_adopt_after_readings() -> None:
    v = _noise(1600)
    v[500:] += 12.0
    s = _scores(RobustBaseline(halflife=200, warmup=100, adopt_after=300), v)
    assert (s[500:800] > 0.25).mean() > 0.95
    assert (s[810:] < 0.25).mean() > 0.99


def test_a_change_of_spread_is_adopted_too() -> None:
    v = _noise(1600)
    v[500:] = 10.0 + (v[500:] - 10.0) * 8.0
    s = _scores(RobustBaseline(halflife=100, warmup=100, gate=0.25), v)
    assert (s[1000:] > 0.5).mean() < 0.01


def test_a_quantised_channel_with_zero_mad_tolerates_its_usual_jumps() -> None:
    rng = np.random.default_rng(3)
    v = np.where(rng.random(3000) < 0.1, 0.33 * rng.choice([-1, 1], 3000), 0.0)
    det = RobustBaseline(warmup=400)
    s = _scores(det, v)
    assert float(det.a["mad"][0]) < 0.01  # the readings pile up on one value
    assert (s[400:] > 0.5).sum() == 0
    assert _scores(det, np.array([3.3]), t0=3000)[0] > 0.5  # ten steps still stands out


def test_state_round_trip_in_the_middle_of_a_gated_run() -> None:
    v = _noise(1200)
    v[500:] += 12.0
    a, b = RobustBaseline(halflife=100), RobustBaseline(halflife=100)
    _scores(a, v[:600])
    b.load_state(a.state())
    assert float(b.a["gated"][0]) == 100.0
    np.testing.assert_array_equal(_scores(a, v[600:], 600), _scores(b, v[600:], 600))


@pytest.mark.parametrize(
    ("kw", "field"), [({"gate": 1.5}, "gate"), ({"adopt_after": 0}, "adopt_after")]
)
def test_bad_settings_name_the_field(kw: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RobustBaseline(**kw)  # type: ignore[arg-type]
