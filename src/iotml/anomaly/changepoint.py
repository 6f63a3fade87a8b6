"""Change points: a two-sided Page-Hinkley (CUSUM) test for level shifts on every series.

:class:`PageHinkley` standardises each reading against the series' own EW mean and
variance, accumulates the excess over a drift allowance ``delta`` (in standard
deviations) upward and downward, and reports the larger sum. A shift of the level by
``k`` standard deviations makes one sum grow by about ``k - delta`` per reading, so the
alarm comes after a delay of about ``h / (k - delta)`` readings for an alarm level ``h``
— small shifts that a point detector never sees are found, large ones quickly. Once the
sum reaches ``reset_at`` (or has stayed at alarm level for ``max_run`` readings) the
detector adopts the new level and starts afresh, so a level shift raises one bounded
alarm, not an everlasting one.

>>> import numpy as np
>>> from iotml.types import Batch
>>> rng = np.random.default_rng(0)
>>> v = rng.normal(0.0, 1.0, 600); v[400:] += 2.0  # a 2-sd level shift at reading 400
>>> b = Batch.from_arrays(["pump"] * 600, ["flow"] * 600, np.arange(600) * 10**6, v)
>>> s = PageHinkley().update(b)
>>> alarm = np.flatnonzero(s.score >= 0.5)
>>> bool(400 <= alarm[0] < 420), bool(alarm[-1] < 430)  # found, and only for a while
(True, True)
"""

from __future__ import annotations

__all__ = ["PageHinkley"]

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from iotml.anomaly.base import SCORE_DECADES, SeriesDetector
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_HOLD = 0.25
"""The baseline stops learning while the statistic is above this fraction of ``reset_at``.

Lower (1/8) lets clean noise freeze the baseline too often (2x the false alarms); higher
lets a small shift be absorbed before it is found (longer delays for 1 sd)."""


class PageHinkley(SeriesDetector):
    """Two-sided Page-Hinkley / CUSUM on standardised residuals; statistic in sd units.

    Parameters
    ----------
    delta : float
        Drift allowance in standard deviations: the sums grow only on residuals beyond
        it. About half the smallest shift worth finding (default 0.5: shifts from 1 sd).
    halflife : float
        Memory of the EW mean and variance the residuals are taken against, in readings.
    reset_at : float or None
        Statistic (in sd) at which the detector re-baselines. Default: where the score
        reaches 1 (``p = 1e-12``): 28.3 sd for ``delta=0.5``, twice the alarm level.
    clip : float
        Residuals enter the sums clipped to ``±clip`` sd, so one spike does not raise a
        level-shift alarm (spikes are the point detectors' business).
    warmup : int
        Readings that only train the baseline; the sums start after them.
    min_std : float
        Floor on the standard deviation, in the series' units.

    Notes
    -----
    Each reading ``x`` gives ``z = clip((x - mean) / std)`` against the state before it
    (``std`` the predictive spread: the unbiased variance times ``1 + 1/n`` for the
    uncertainty of the mean), then ``up = max(0, up + z - delta)``,
    ``down = max(0, down - z - delta)``; ``h = max(up, down)``.

    **Calibration.** For Gaussian residuals the increments ``z - delta`` have
    ``E[exp(2·delta·(z - delta))] = 1``, so by Lundberg's inequality the stationary
    ``P(up > h) <= exp(-2·delta·h)``, and ``2·exp(-2·delta·h)`` with both sides
    (clipping only makes it more conservative). The variance is an estimate on ``nu``
    degrees of freedom (readings so far, at most the EW weights' effective sample size,
    less one); averaging the bound over its chi-square error gives
    ``2·(1 + 4·delta·h/nu)^(-nu/2)``, which is the bound at the statistic reported,
    ``raw = nu/(4·delta) · ln(1 + 4·delta·h/nu)`` (``≈ h`` once ``nu`` is large; smaller
    just after warm-up, when the spread is still uncertain). So ``p = min(1,
    2·exp(-2·delta·raw))``, and the score ``0.5`` (``p = 1e-6``) is at ``raw = alarm_at
    = ln(2e6) / (2·delta)``, 14.5 sd with the default ``delta``. On clean Gaussian
    noise the observed tail is 0.2 to 0.55 of the bound (see the tests).

    **Re-baselining.** After a reading is scored the detector re-baselines if
    ``raw >= reset_at``, or if ``raw >= alarm_at`` and the excursion has lasted
    ``max_run = ceil(reset_at / delta)`` readings (what the design shift, ``2·delta``,
    takes to reach ``reset_at``; 57 with the defaults) — a shift near ``delta`` would
    otherwise hover at alarm level. The mean jumps to the level of the excursion,
    ``mean ± std·(sum/run + delta)`` with ``run`` the readings since that side's sum was
    last 0, and then averages the readings that follow as if those ``run`` readings had
    been its only ones, so it settles on the new level quickly; both sums and runs
    restart at 0 and the variance is kept. While ``raw >= reset_at / 4`` neither mean
    nor variance learns, so a shift in progress is neither absorbed nor mistaken for
    noise. A shift of ``k`` sd scores ≥ 0.5 from about ``14.5 / (k - 0.5)`` readings
    after it, for at most ``max_run`` readings, then the detector is quiet at the new
    level.

    **Memory** per series: mean, variance, readings behind the mean, two sums, two run
    lengths and the base's two: 72 bytes.
    """

    name = "pagehinkley"
    fields: ClassVar[dict[str, float]] = {
        "mean": 0.0,
        "var": 0.0,
        "age": 0.0,
        "up": 0.0,
        "down": 0.0,
        "run_up": 0.0,
        "run_down": 0.0,
    }

    def __init__(
        self,
        *,
        delta: float = 0.5,
        halflife: float = 200.0,
        reset_at: float | None = None,
        clip: float = 5.0,
        warmup: int = 30,
        min_std: float = 0.0,
    ) -> None:
        super().__init__(warmup=warmup)
        if not delta > 0:
            raise ConfigError(f"delta must be a positive number of std devs, got {delta!r}")
        if not halflife > 0:
            raise ConfigError(f"halflife must be a positive number of readings, got {halflife!r}")
        if not clip > delta:
            raise ConfigError(f"clip must exceed delta ({delta!r}) in std devs, got {clip!r}")
        default = np.log(2.0) + SCORE_DECADES * np.log(10.0)  # -ln(p/2) at score 1
        self.reset_at = float(default / (2.0 * delta)) if reset_at is None else float(reset_at)
        if not self.reset_at > 0:
            raise ConfigError(f"reset_at must be a positive number of std devs, got {reset_at!r}")
        self.delta, self.clip, self.min_std = float(delta), float(clip), float(min_std)
        self.alarm_at = float((np.log(2.0) + SCORE_DECADES / 2 * np.log(10.0)) / (2.0 * delta))
        self.max_run = float(np.ceil(self.reset_at / self.delta))
        self.alpha = float(1.0 - 0.5 ** (1.0 / halflife))
        self.ess = (2.0 - self.alpha) / self.alpha
        self.params |= {
            "delta": delta,
            "halflife": halflife,
            "reset_at": reset_at,
            "clip": clip,
            "min_std": min_std,
        }

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        a, n, age = self.a, self.count[s], self.a["age"][s]
        m, v = a["mean"][s], a["var"][s]
        nu = np.clip(n - 1.0, 1.0, self.ess - 1.0)  # degrees of freedom of the variance
        # the predictive spread: unbiased variance, plus the uncertainty of the mean
        pred = v * (1.0 + 1.0 / nu) * (1.0 + 1.0 / np.clip(age, 1.0, self.ess))
        floor = np.maximum(self.min_std, 1e-6 * np.maximum(np.abs(m), 1.0))
        d = x - m
        z = np.clip(d / np.maximum(np.sqrt(pred), floor), -self.clip, self.clip)
        up = np.maximum(0.0, a["up"][s] + z - self.delta)
        down = np.maximum(0.0, a["down"][s] - z - self.delta)
        warming = n < self.warmup
        if warming.any():
            up[warming] = down[warming] = 0.0
        run_up, run_down = (a["run_up"][s] + 1.0) * (up > 0), (a["run_down"][s] + 1.0) * (down > 0)
        # the Lundberg bound averaged over the chi-square error of the variance estimate
        k = 4.0 * self.delta
        raw = np.asarray(nu / k * np.log1p(k * np.maximum(up, down) / nu), dtype=np.float64)
        # no learning while a shift may be building up: it would absorb it, and the shift
        # would inflate the variance; a re-baseline adopts the new level instead
        learn = raw < _HOLD * self.reset_at
        am = np.maximum(self.alpha, 1.0 / (age + 1.0)) * learn
        av = np.maximum(self.alpha, 1.0 / (n + 1.0)) * learn
        mean, age = m + am * d, age + 1.0
        run = np.maximum(run_up, run_down)
        reset = (raw >= self.reset_at) | ((raw >= self.alarm_at) & (run >= self.max_run))
        if reset.any():
            i = np.flatnonzero(reset)
            mean[i], age[i] = self._new_level(
                m[i], np.maximum(np.sqrt(pred[i]), floor[i]), up[i], down[i], run_up[i], run_down[i]
            )
            up[i] = down[i] = run_up[i] = run_down[i] = 0.0
        a["mean"][s], a["var"][s], a["age"][s] = mean, (1.0 - av) * (v + av * d * d), age
        a["up"][s], a["down"][s], a["run_up"][s], a["run_down"][s] = up, down, run_up, run_down
        return raw

    def _new_level(self, m: F64, std: F64, *sums: F64) -> tuple[F64, F64]:
        """The level of an excursion (the mean of its readings) and its weight, ``run``."""
        up, down, run_up, run_down = sums
        is_up = up >= down
        run = np.maximum(np.where(is_up, run_up, run_down), 1.0)
        excess = np.where(is_up, up / run + self.delta, -(down / run + self.delta))
        return m + std * excess, run

    def _p(self, raw: F64) -> F64:
        p: F64 = np.minimum(1.0, 2.0 * np.exp(-2.0 * self.delta * raw))
        return p
