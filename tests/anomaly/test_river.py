"""RiverDetector: River models per series, calibrated online (the contract suite runs it too)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from iotml.anomaly import RiverDetector
from iotml.errors import ConfigError, InvalidData, MissingExtra
from iotml.types import Batch

river = pytest.importorskip("river")
from river import anomaly, preprocessing  # noqa: E402

F64 = npt.NDArray[np.float64]
SPIKE = 500


class Distance(river.base.AnomalyDetector):  # type: ignore[misc]
    """A minimal River model: distance from the running mean (scores what it sees)."""

    def __init__(self) -> None:
        self.n, self.mean = 0, 0.0

    def learn_one(self, x: dict[str, float]) -> None:
        self.n += 1
        self.mean += (x["x"] - self.mean) / self.n

    def score_one(self, x: dict[str, float]) -> float:
        return abs(x["x"] - self.mean)


def spiked(n_series: int = 20, n: int = 600, amp: float = 15.0) -> F64:
    v = np.random.default_rng(1).normal(20.0, 1.0, (n_series, n))
    v[:, SPIKE] += amp
    return v


def scores(det: RiverDetector, values: F64) -> F64:
    """Scores of series ``i`` = row ``i`` of ``values``, one reading a second."""
    n_series, n = values.shape
    ids = np.repeat(np.array([f"s{i}" for i in range(n_series)], dtype=object), n)
    ts = np.tile(np.arange(n, dtype=np.int64) * 10**6, n_series)
    b = Batch.from_arrays(ids, np.full(ids.size, "m", dtype=object), ts, values.ravel())
    return det.update(b).score.reshape(n_series, n)


def hst() -> Any:
    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(window_size=50, seed=42)


def test_a_spike_scores_higher_than_normal_readings_with_half_space_trees() -> None:
    s = scores(RiverDetector(hst, model_warmup=50), spiked())
    normal = np.delete(s[:, 100:], SPIKE - 100, axis=1)
    outscored_by = (normal >= s[:, [SPIKE]]).mean(axis=1)  # per series
    # HalfSpaceTrees on one value is weak: a 15-sigma spike is in the top few percent
    # (measured: median 1 %, worst 6 %), above every series' typical reading
    assert np.median(outscored_by) < 0.03
    assert (outscored_by < 0.1).all()
    assert (s[:, SPIKE] > 3 * np.median(normal, axis=1)).all()


def test_a_model_that_separates_the_spike_gets_a_score_that_alerts() -> None:
    s = scores(RiverDetector(Distance), spiked())
    assert (s[:, SPIKE] > 0.5).all()  # the default alert threshold: p < 1e-6
    assert (np.argmax(s, axis=1) == SPIKE).all()
    assert np.median(s[:, 30:]) < 0.1


def test_scores_are_zero_until_the_model_and_the_calibration_have_warmed_up() -> None:
    det = RiverDetector(Distance, model_warmup=40, warmup=25)
    batch = Batch.from_arrays(["d"] * 100, ["m"] * 100, np.arange(100) * 10**6, np.zeros(100))
    s = det.update(batch)
    assert s.ready.tolist() == [False] * 65 + [True] * 35
    assert (s.score[:65] == 0).all()


def test_rank_calibration_is_capped_by_its_window() -> None:
    s = scores(RiverDetector(Distance, calibration="rank", window=99, warmup=10), spiked(3))
    assert s.max() == pytest.approx(2 / 12)  # p >= 1 / (99 + 1): the cap
    np.testing.assert_allclose(s[:, SPIKE], 2 / 12)  # the spike reaches it


def test_state_holds_the_models_and_needs_matching_params() -> None:
    first = RiverDetector(Distance)
    scores(first, spiked(2)[:, :50])
    assert first.n_series == 2
    assert first.nbytes_per_series() > 8 * 3
    with pytest.raises(ConfigError, match="halflife"):
        RiverDetector(Distance, halflife=10.0).load_state(first.state())
    with pytest.raises(InvalidData, match="River detector state"):
        RiverDetector(Distance).load_state(b"not a state")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"calibration": "quantile"}, "calibration"), ({"warmup": -1}, "warmup"),
     ({"halflife": 0.0}, "halflife"), ({"window": 0}, "window")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RiverDetector(Distance, **kwargs)


def test_without_river_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "river", None)  # `import river` now fails
    with pytest.raises(MissingExtra, match=r"iotml\[river\]"):
        RiverDetector(Distance)


def test_importing_iotml_anomaly_does_not_import_river() -> None:
    code = "import sys, iotml.anomaly; sys.exit('river' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
