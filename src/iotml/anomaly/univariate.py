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
from scipy.special import log_ndtr

from iotml.anomaly.base import SeriesDetector
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _alpha(halflife: float, name: str = "halflife") -> float:
    if not halflife > 0:
        raise ConfigError(f"{name} must be a positive number of readings, got {halflife!r}")
    return float(1.0 - 0.5 ** (1.0 / halflife))


def _two_sided_p(z: F64) -> F64:
    p: F64 = np.exp(log_ndtr(-np.abs(z)) + np.log(2.0))
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
    ``|x - median|``. An outlier moves them by one step, not by its size.
    """

    name = "robust"
    fields: ClassVar[dict[str, float]] = {"median": 0.0, "mad": 0.0}

    def __init__(self, *, halflife: float = 200.0, warmup: int = 30, min_mad: float = 0.0):
        super().__init__(warmup=warmup)
        self.alpha = _alpha(halflife)
        self.min_mad = float(min_mad)
        self.params |= {"halflife": halflife, "min_mad": min_mad}

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        med, mad = self.a["median"], self.a["mad"]
        n = self.count[s]
        m, d = med[s], mad[s]
        floor = np.maximum(self.min_mad, 1e-6 * np.maximum(np.abs(m), 1.0))
        spread = np.maximum(d, floor)
        z = (x - m) / (1.4826 * spread)
        first = n == 0
        # early on the steps are larger (1/n), so the estimates settle within the warm-up
        a = np.maximum(self.alpha, 1.0 / (n + 1.0))
        step = a * 1.4826 * np.where(first, 0.0, spread)
        new_m = np.where(first, x, m + step * np.sign(x - m))
        dev = np.abs(x - new_m)
        new_d = np.where(first, 0.0, np.where(d == 0.0, dev, d + a * d * np.sign(dev - d)))
        med[s], mad[s] = new_m, new_d
        return np.where(first, 0.0, np.abs(z))

    def _p(self, raw: F64) -> F64:
        return _two_sided_p(raw)
