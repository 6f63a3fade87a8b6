"""A seasonal baseline: each reading against what its series does at that time of day (or week).

:class:`SeasonalBaseline` keeps, per series, a **profile** of ``bins`` phase bins over a
``period`` (default a day in 24 hourly bins; ``period_s=7 * 86400, bins=168`` for a
weekly profile). A reading falls in the bin of its UTC timestamp's phase,
``(ts mod period) * bins // period``, and is scored by its z against that bin's
exponentially weighted mean and variance, learned online (predict-then-learn). A value
that is normal at 14:00 is then abnormal at 03:00, and the daily peak is not an anomaly.

>>> import numpy as np
>>> from iotml.types import Batch
>>> rng = np.random.default_rng(0)
>>> t = np.arange(30 * 24) * 3600 * 10**6  # hourly for 30 days
>>> hour = (t // (3600 * 10**6)) % 24
>>> v = 20 + 5 * np.sin(2 * np.pi * (hour - 8) / 24) + rng.normal(0, 0.3, t.size)
>>> v[-21] = 25.0  # 03:00 on the last day, at the level of a normal 14:00
>>> s = SeasonalBaseline().update(Batch.from_arrays(["m"] * t.size, ["kw"] * t.size, t, v))
>>> int(np.argmax(s.score)) == t.size - 21, bool(s.score[-21] > 0.5)
(True, True)
"""

from __future__ import annotations

__all__ = ["SeasonalBaseline"]

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from iotml.anomaly.base import SeriesDetector
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_BIN_FIELDS = ("bin_mean", "bin_var", "bin_n")


def _alpha(halflife: float) -> float:
    if not halflife > 0:
        raise ConfigError(f"halflife must be a positive number of readings, got {halflife!r}")
    return float(1.0 - 0.5 ** (1.0 / halflife))


def _ew(mean: F64, var: F64, n: F64 | I64, x: F64, alpha: float) -> tuple[F64, F64]:
    """One exponentially weighted mean/variance step; the first readings average plainly."""
    a = np.maximum(alpha, 1.0 / (n + 1.0))
    d = x - mean
    return mean + a * d, (1.0 - a) * (var + a * d * d)


def _gaussian_equivalent(t: F64, nu: F64) -> F64:
    """``|z|`` with the two-sided tail of Student's ``t`` on ``nu`` dof (Wallace, 1959).

    >>> float(_gaussian_equivalent(np.array([5.0]), np.array([36.0]))[0])  # exact 4.328
    4.327...
    """
    z: F64 = np.sqrt(nu * np.log1p(t * t / nu)) * (8.0 * nu + 1.0) / (8.0 * nu + 3.0)
    return z


class SeasonalBaseline(SeriesDetector):
    """Per-series profile of EW mean/variance in phase bins; the statistic is ``|z|``.

    Parameters
    ----------
    period_s : float
        The period of the profile in seconds (default a day).
    bins : int
        Phase bins per period (default 24: hourly bins of a daily profile).
    halflife : float
        Memory of each bin in *its own* readings. The series-wide statistics (below) use
        ``halflife * bins`` readings of the series, the same span of time.
    min_per_bin : int
        A bin scores with its own statistics once it has this many readings.
    warmup : int
        Readings of a series before its scores count (the base's warm-up).
    min_std : float
        Floor on the standard deviation, in the series' units (default scales with it).

    Notes
    -----
    **Score.** A bin with ``n >= min_per_bin`` readings gives
    ``z = (x - mean_bin) / sqrt(v * (1 + 1/n'))``, ``n' = min(n, ess)`` (``ess`` the
    effective sample size of the EW weights), where ``v`` shrinks the bin's variance
    toward the series' pooled residual variance (the EW mean square of readings about
    their bins' means, which every bin feeds): ``v = w * var_bin + (1 - w) * pooled``,
    ``w = n' / (n' + min_per_bin)``. A young bin's variance rests on few readings, and a
    z against it would have Student-t tails; the pooled part keeps those false alarms
    down while the bin still has its own spread (the noise of a series may depend on the
    time of day). The factor ``1 + 1/n'`` is the uncertainty of the bin mean.

    **Fallback and warm-up.** While a bin has fewer than ``min_per_bin`` readings, the
    reading is scored against the series' overall EW mean and variance — but only once
    the series has been seen for a whole period, so those statistics have seen the whole
    cycle; before that ``raw`` is 0 (no score). So a new series is quiet for its first
    period unless its bins fill sooner (several readings per bin per period), and the
    fallback catches only readings outside the series' whole range meanwhile.

    **Memory** per series: three floats per bin (mean, variance, count) and five more
    (overall mean and variance, pooled variance and its count, first timestamp), plus the
    base's two: ``8 * (3 * bins + 7)`` bytes, 632 B for 24 bins, 4,088 B for 168.

    Bins are phases of UTC time, so the profile of a series in any time zone is learned
    the same way; a daylight-saving change moves local habits by one bin for half a year,
    which the bins relearn at their ``halflife``.
    """

    name = "seasonal"
    fields: ClassVar[dict[str, float]] = {
        "mean": 0.0,
        "var": 0.0,
        "pooled": 0.0,
        "pooled_n": 0.0,
        "t0": 0.0,
        "bin_mean": 0.0,
        "bin_var": 0.0,
        "bin_n": 0.0,
    }

    def __init__(
        self,
        *,
        period_s: float = 86_400.0,
        bins: int = 24,
        halflife: float = 50.0,
        min_per_bin: int = 10,
        warmup: int = 30,
        min_std: float = 0.0,
    ) -> None:
        if not isinstance(bins, int) or bins < 1:
            raise ConfigError(f"bins must be a positive integer, got {bins!r}")
        if not period_s * 1e6 >= bins:
            raise ConfigError(f"period_s must be positive, at least 1 µs per bin, got {period_s!r}")
        if not isinstance(min_per_bin, int) or min_per_bin < 1:
            raise ConfigError(f"min_per_bin must be a positive integer, got {min_per_bin!r}")
        super().__init__(warmup=warmup, widths=dict.fromkeys(_BIN_FIELDS, bins))
        self.bins = bins
        self.period_us = round(period_s * 1e6)
        self.alpha = _alpha(halflife)
        self.alpha_all = _alpha(halflife * bins)
        self.ess = (2.0 - self.alpha) / self.alpha
        self.min_per_bin = min_per_bin
        self.min_std = float(min_std)
        self.params |= {
            "period_s": period_s,
            "bins": bins,
            "halflife": halflife,
            "min_per_bin": min_per_bin,
            "min_std": min_std,
        }

    def bin_of(self, ts_us: I64) -> I64:
        """The profile bin of each timestamp (µs since the epoch, UTC)."""
        out: I64 = (np.asarray(ts_us, dtype=np.int64) % self.period_us) * self.bins
        return out // self.period_us

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        a, ts, n = self.a, self._ts_us, self.count[s]
        k = s * self.bins + self.bin_of(ts)  # into the flattened (series, bins) arrays
        b_mean, b_var, b_n = (a[f].reshape(-1) for f in _BIN_FIELDS)
        nb, mb, vb = b_n[k], b_mean[k], b_var[k]
        m, v, pooled = a["mean"][s], a["var"][s], a["pooled"][s]
        floor2 = np.square(np.maximum(self.min_std, 1e-6 * np.maximum(np.abs(m), 1.0)))
        ne = np.clip(nb, 1.0, self.ess)
        w = ne / (ne + self.min_per_bin)
        nu = np.maximum(ne - 1.0, 1.0)  # degrees of freedom of the bin's own variance
        v_bin = (w * vb * ne / nu + (1.0 - w) * pooled) * (1.0 + 1.0 / ne)
        d = x - mb
        z_bin = _gaussian_equivalent(d / np.sqrt(np.maximum(v_bin, floor2)), nu / (w * w))
        z_all = np.abs(x - m) / np.sqrt(np.maximum(v, floor2))
        t0 = np.where(n == 0, ts, a["t0"][s])
        whole_period = (n > 0) & (ts - t0 >= self.period_us)
        raw = np.where(nb >= self.min_per_bin, z_bin, np.where(whole_period, z_all, 0.0))
        # learn: the series-wide statistics, the pooled residual variance, the bin
        a["t0"][s] = t0
        a["mean"][s], a["var"][s] = _ew(m, v, n, x, self.alpha_all)
        # residuals about the bin's mean (once it has one), scaled by that mean's own
        # uncertainty so the estimate is not inflated while bins are young
        pn = a["pooled_n"][s]
        ap = np.where(nb > 0, np.maximum(self.alpha_all, 1.0 / (pn + 1.0)), 0.0)
        a["pooled"][s] = pooled + ap * (d * d / (1.0 + 1.0 / ne) - pooled)
        a["pooled_n"][s] = pn + (nb > 0)
        b_mean[k], b_var[k] = _ew(mb, vb, nb, x, self.alpha)
        b_n[k] = nb + 1.0
        return raw

    def _p(self, raw: F64) -> F64:
        p: F64 = np.exp(log_ndtr(-np.abs(raw)) + np.log(2.0))
        return p
