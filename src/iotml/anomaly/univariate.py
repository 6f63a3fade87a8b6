"""Per-series baselines: how far is this reading from what the series usually does?

* :class:`EWMA` — exponentially weighted mean and variance; the z-score of each reading.
* :class:`RobustBaseline` — an exponentially weighted median and median absolute
  deviation, tracked by stochastic approximation, so a spike does not drag the baseline
  and a heavy tail does not inflate the spread.

Both weigh readings, not seconds (``halflife`` is in readings), so irregular sampling
and gaps do not distort the baseline; a series that changes its rate is still compared
with its own recent readings.

>>> import numpy as np
>>> from iotml.types import Batch
>>> rng = np.random.default_rng(0)
>>> v = rng.normal(20.0, 0.5, 300); v[250] = 35.0
>>> b = Batch.from_arrays(["pump"] * 300, ["temp"] * 300, np.arange(300) * 10**6, v)
>>> s = EWMA(halflife=50).update(b)
>>> int(np.argmax(s.score)), s.score[250] > 0.9
(250, np.True_)
"""

from __future__ import annotations

__all__ = ["EWMA", "RobustBaseline"]

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from iotml.anomaly.base import SCORE_DECADES, SeriesDetector
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


def _alpha(halflife: float, name: str = "halflife") -> float:
    if not halflife > 0:
        raise ConfigError(f"{name} must be a positive number of readings, got {halflife!r}")
    return float(1.0 - 0.5 ** (1.0 / halflife))


def _two_sided_p(z: F64) -> F64:
    # ndtr of a negative argument is computed from erfc: accurate far into the tail, and it
    # only underflows (|z| > 38) where the score has long been 1; a third cheaper than
    # exp(log_ndtr)
    p: F64 = 2.0 * ndtr(-np.abs(z))
    return p


class EWMA(SeriesDetector):
    """Exponentially weighted mean/variance per series; the statistic is ``|z|``.

    ``min_std`` keeps a perfectly flat series from turning its first wobble into an
    infinite z (it is in the series' own units; the default scales with its level).
    """

    name = "ewma"
    fields: ClassVar[dict[str, float]] = {"mean": 0.0, "var": 0.0}

    def __init__(self, *, halflife: float = 200.0, warmup: int = 30, min_std: float = 0.0):
        super().__init__(warmup=warmup)
        self.alpha = _alpha(halflife)
        self.min_std = float(min_std)
        self.params |= {"halflife": halflife, "min_std": min_std}

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        mean, var = self.a["mean"], self.a["var"]
        n = self.count[s]
        m, v = mean[s], var[s]
        floor = np.maximum(self.min_std, 1e-6 * np.maximum(np.abs(m), 1.0))
        z = (x - m) / np.maximum(np.sqrt(v), floor)
        # the first readings average plainly, then the exponential weights take over
        a = np.maximum(self.alpha, 1.0 / (n + 1.0))
        d = x - m
        mean[s] = m + a * d
        var[s] = (1.0 - a) * (v + a * d * d)
        return np.where(n > 0, np.abs(z), 0.0)

    def _p(self, raw: F64) -> F64:
        return _two_sided_p(raw)


class RobustBaseline(SeriesDetector):
    """A running median and MAD per series; the statistic is ``|x - median| / (1.4826·MAD)``.

    Both are tracked by stochastic approximation: each reading moves the median by a step
    proportional to the current spread, up or down, and the MAD likewise toward
    ``|x - median|``. An outlier moves them by one step, not by its size. Such steps are
    proportional to the spread, so a spread that starts far too small (the first two
    readings happened to be nearly equal) would take thousands of readings to grow: during
    the warm-up the two are therefore plain running averages — the mean, and the mean
    absolute deviation scaled to a MAD (times 0.845, exact for normal noise) — which settle
    whatever the start; the stochastic approximation takes over from there.

    **Gated learning.** After the warm-up, a reading scoring above ``gate`` (default 1:
    ``p <= 1e-12``, ``|z| > 7.03``) is not learned from, so a long anomaly is not absorbed
    into the baseline before it ends. A change of
    normal is not refused forever: after ``adopt_after`` consecutive gated readings
    (default two half-lives, when an ungated baseline would have taken three quarters of
    the new level) the baseline adopts the run — its mean as the median, its standard
    deviation as the spread — and learns on from there.

    **Spread floor.** A quantised channel whose readings pile up on one value has a MAD of
    0 while it still moves a step now and then. Each series tracks its resolution ``q``,
    the smallest non-zero change between consecutive readings, and the spread is floored
    at ``q / 4``, the MAD of the rounding error (uniform on ``±q/2``): a reading is known
    only to within that, so a one-step move scores ``|z| = 2.7``, not
    the millions of standard deviations a zero MAD would make of it.

    >>> import numpy as np
    >>> from iotml.types import Batch
    >>> v = np.random.default_rng(1).normal(0.0, 1.0, 400); v[200:300] += 10.0
    >>> det = RobustBaseline(halflife=100, warmup=50)  # adopts a run of 200
    >>> s = det.update(Batch.from_arrays(["d"] * 400, ["t"] * 400, np.arange(400), v))
    >>> bool((s.score[200:300] > 0.5).mean() > 0.9), bool((s.score[310:] < 0.5).all())
    (True, True)
    """

    name = "robust"
    fields: ClassVar[dict[str, float]] = {
        "median": 0.0,
        "mad": 0.0,
        "last": 0.0,
        "quantum": 0.0,
        "gated": 0.0,
        "run_mean": 0.0,
        "run_m2": 0.0,
    }

    def __init__(
        self,
        *,
        halflife: float = 200.0,
        warmup: int = 30,
        min_mad: float = 0.0,
        gate: float = 1.0,
        adopt_after: int | None = None,
    ):
        super().__init__(warmup=warmup)
        self.alpha = _alpha(halflife)
        if not 0.0 <= gate <= 1.0:
            raise ConfigError(f"gate must be a score in [0, 1], got {gate!r}")
        adopt = round(2 * halflife) if adopt_after is None else adopt_after
        if not (isinstance(adopt, int) and adopt >= 1):
            raise ConfigError(f"adopt_after must be at least 1 reading, got {adopt_after!r}")
        self.min_mad = float(min_mad)
        self.gate_z = _score_to_z(gate)
        self.adopt_after = adopt
        self.params |= {"halflife": halflife, "min_mad": min_mad, "gate": gate,
                        "adopt_after": adopt}  # fmt: skip

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        a_ = self.a
        n = self.count[s]
        m, d = a_["median"][s], a_["mad"][s]
        first = n == 0
        q = _resolution(a_["quantum"], a_["last"], s, x, first)
        floor = np.maximum(self.min_mad, 1e-6 * np.maximum(np.abs(m), 1.0))
        spread = np.maximum(np.maximum(d, 0.25 * q), floor)
        z = (x - m) / (1.4826 * spread)
        a = np.maximum(self.alpha, 1.0 / (n + 1.0))
        step = a * 1.4826 * np.where(first, 0.0, spread)
        early = n < self.warmup  # plain running averages: they settle whatever the start
        new_m = np.where(
            first, x, np.where(early, m + (x - m) / (n + 1.0), m + step * np.sign(x - m))
        )
        dev = np.abs(x - new_m)
        tracked = np.where(d == 0.0, dev, d + a * d * np.sign(dev - d))
        averaged = d + (_MAD_PER_MEAN_AD * dev - d) / np.maximum(n, 1.0)
        new_d = np.where(first, 0.0, np.where(early, averaged, tracked))
        over = (np.abs(z) > self.gate_z) & (n >= self.warmup) & ~first
        run = self._run(s, x, over)
        if run is not None:  # some readings are gated: keep, or adopt the run
            adopt, run_mean, run_sd = run
            new_m = np.where(adopt, run_mean, np.where(over, m, new_m))
            new_d = np.where(adopt, 0.6745 * run_sd, np.where(over, d, new_d))
        a_["median"][s], a_["mad"][s] = new_m, new_d
        return np.where(first, 0.0, np.abs(z))

    def _run(self, s: I64, x: F64, over: B) -> tuple[B, F64, F64] | None:
        """Count each series' consecutive gated readings with their mean and sum of squared
        deviations (Welford); per reading whether its run is now adopted, the run's mean
        and standard deviation. ``None`` when no reading is gated (the usual case)."""
        g, mean, m2 = self.a["gated"], self.a["run_mean"], self.a["run_m2"]
        if not over.any():
            ended = s[g[s] > 0]
            g[ended] = mean[ended] = m2[ended] = 0.0
            return None
        k = np.where(over, g[s] + 1.0, 0.0)
        delta = x - mean[s]
        new_mean = np.where(over, mean[s] + delta / np.maximum(k, 1.0), 0.0)
        new_m2 = np.where(over, m2[s] + delta * (x - new_mean), 0.0)
        adopt: B = k >= self.adopt_after
        sd: F64 = np.sqrt(new_m2 / np.maximum(k, 1.0))
        keep = ~adopt
        g[s], mean[s], m2[s] = k * keep, new_mean * keep, new_m2 * keep
        return adopt, new_mean, sd

    def _p(self, raw: F64) -> F64:
        return _two_sided_p(raw)


_MAD_PER_MEAN_AD = 0.6745 / 0.7979  # MAD / mean absolute deviation of a normal distribution


def _resolution(quantum: F64, last: F64, s: I64, x: F64, first: B) -> F64:
    """Each series' resolution before this reading (the smallest non-zero step between
    consecutive readings so far, 0 until the series first changes); then learn from it."""
    q, step = quantum[s], np.abs(x - last[s])
    if first.any():
        step[first] = 0.0
    quantum[s] = np.where((step > 0.0) & ((q == 0.0) | (step < q)), step, q)
    last[s] = x
    return q


def _score_to_z(score: float) -> float:
    """The |z| whose two-sided tail probability has calibrated score ``score``."""
    return float(-ndtri(0.5 * 10.0 ** (-SCORE_DECADES * score))) if score > 0 else 0.0
