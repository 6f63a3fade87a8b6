"""A per-series model of normal that finds its own cycles and keeps its promised false-alarm rate.

:class:`Adaptive` predicts each reading from three candidate models of the series, run side
by side, and scores it against the one that has predicted this series best:

* ``flat`` — a level (exponentially weighted);
* ``daily`` — a level plus a daily profile (``daily_bins`` phase bins, interpolated
  between bin centres, so a smooth cycle is not a staircase), Holt-Winters style: the
  level learns from the deseasonalised reading, the profile from the reading less the level;
* ``weekly`` — ``daily`` plus a weekly profile of what ``daily`` leaves (168 hourly bins).

Each model's residual ``r`` (reading minus the model's baseline) is whitened with an AR(1)
term learned online, ``e = r - φ·r_prev``, so an autocorrelated residual (a slow wander, a
cycle the profile has not learned yet) is judged by how surprising each step is, not by
how far the wander has gone. **Seasonality is detected, not assumed**: a profile model is
chosen only once the series has been seen for two of its periods and its one-step
squared error (exponentially weighted) is below ``choose`` (0.8) times that of the simpler
model. A series without a cycle stays ``flat``; one with a daily cycle moves to ``daily``.

**Three statistics** from the chosen model, the largest reported (the score of the max of
three tests is at most ``log10(3)/12`` above each one's calibration):

* the innovation ``e / sd_e`` — a jump, a spike, the onset of a shift;
* the residual ``r / sd_r`` — how far from the baseline the reading is, so a long anomaly
  stays flagged after its onset (the innovation of its second reading is small);
* the drift statistic: an exponentially weighted mean (``drift_halflife`` readings) of the
  standardised innovations, clipped at ±4, against its null spread
  ``sqrt(a / (2 - a))`` — a shift or a ramp too small for any one reading to stand out.

**Calibration** holds under heavy tails and autocorrelation: each statistic is referred to
Student's *t* rather than the normal, with degrees of freedom from the innovations' own
kurtosis (``nu = 4 + 6 / excess``, exponentially weighted moments), and for the residual no
more than its effective sample size, ``ess · (1 - φ) / (1 + φ)``: the variance of a
strongly autocorrelated residual rests on few independent values. A quantised channel's
spreads are floored at a quarter of its resolution (as :class:`RobustBaseline` does).

**Gated learning**: a ready reading scoring above ``gate`` (default 0.5, ``p = 10⁻⁶``)
teaches nothing, so a long anomaly or a drift is not absorbed while it lasts. A lasting
change of regime is adopted after ``adopt_after`` consecutive gated readings (default 100):
each model's level moves by the run's mean residual, its drift statistic restarts,
and learning resumes.

>>> import numpy as np
>>> from iotml.types import Batch
>>> rng = np.random.default_rng(0)
>>> t = np.arange(14 * 288) * 300 * 10**6  # every 5 minutes for two weeks
>>> day = 5 * np.sin(2 * np.pi * t / (86400 * 10**6))
>>> v = 20 + day + rng.normal(0, 0.3, t.size)
>>> v[-100:-90] += 15  # a 50-minute excursion on the last day
>>> det = Adaptive()
>>> s = det.update(Batch.from_arrays(["m"] * t.size, ["temp"] * t.size, t, v))
>>> det.model_of("m", "temp"), bool(s.score[-100] > 0.5), float(s.score[:-100].max()) < 0.5
('daily', True, True)
"""

from __future__ import annotations

__all__ = ["Adaptive"]

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from iotml.anomaly.base import SeriesDetector
from iotml.anomaly.seasonal import _gaussian_equivalent
from iotml.anomaly.univariate import _alpha, _resolution, _score_to_z
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

MODELS = ("flat", "daily", "weekly")
DAY_US = 86_400 * 10**6
WEEK_US = 7 * DAY_US
_M = len(MODELS)
_PER_MODEL = ("c0", "c1", "r_prev", "v_e", "v4_e", "mse", "run_r", "cus", "v_cus")
_CLIP = 4.0  # standardised innovations are clipped here before they are accumulated


class Adaptive(SeriesDetector):
    """Level, daily and weekly models per series; the best one scores (see the module).

    Parameters
    ----------
    halflife : float
        Memory, in readings, of the levels, spreads, AR terms and model errors.
    season_halflife : float
        Memory of each profile bin, in that bin's own updates.
    daily_bins : int
        Phase bins of the daily profile (48: half-hours, interpolated).
    weekly : bool
        Whether to run the weekly model at all (168 floats per series more, twice).
    choose : float
        A profile model is chosen when its error is below ``choose`` times the simpler one's.
    drift_halflife : float
        Memory, in readings, of the drift statistic.
    gate, adopt_after
        Readings scoring above ``gate`` are not learned; ``adopt_after`` of them in a row
        are adopted as the new normal.
    warmup, min_std
        Readings before scores count; a floor on spreads, in the series' units.
    """

    name = "adaptive"
    fields: ClassVar[dict[str, float]] = {
        "level": 0.0,  # per model (width 3): flat, daily, weekly (daily's level is shared)
        "prof_d": 0.0,
        "n_d": 0.0,
        "prof_w": 0.0,
        "n_w": 0.0,
        "t0": 0.0,
        "last": 0.0,
        "quantum": 0.0,
        "gated": 0.0,
        **dict.fromkeys(_PER_MODEL, 0.0),
    }

    def __init__(
        self,
        *,
        halflife: float = 200.0,
        season_halflife: float = 10.0,
        daily_bins: int = 48,
        weekly: bool = True,
        choose: float = 0.8,
        drift_halflife: float = 10.0,
        gate: float = 0.5,
        adopt_after: int = 100,
        warmup: int = 30,
        min_std: float = 0.0,
    ) -> None:
        if not isinstance(daily_bins, int) or daily_bins < 2:
            raise ConfigError(f"daily_bins must be an integer of at least 2, got {daily_bins!r}")
        if not 0.0 < choose <= 1.0:
            raise ConfigError(f"choose must be in (0, 1], got {choose!r}")
        if not 0.0 < gate <= 1.0:
            raise ConfigError(f"gate must be a score in (0, 1], got {gate!r}")
        adopt = adopt_after
        if not (isinstance(adopt, int) and adopt >= 1):
            raise ConfigError(f"adopt_after must be at least 1 reading, got {adopt_after!r}")
        widths = dict.fromkeys(_PER_MODEL, _M) | {"level": _M}
        widths |= {"prof_d": daily_bins, "n_d": daily_bins}
        widths |= {"prof_w": 168, "n_w": 168} if weekly else {"prof_w": 1, "n_w": 1}
        super().__init__(warmup=warmup, widths=widths)
        self.alpha = _alpha(halflife)
        self.alpha_s = _alpha(season_halflife, "season_halflife")
        self.alpha_c = _alpha(drift_halflife, "drift_halflife")
        self.cus_sd = float(np.sqrt(self.alpha_c / (2.0 - self.alpha_c)))
        self.alpha_v = _alpha(10.0 * halflife)  # the drift statistic's own spread: slow
        self.ess = (2.0 - self.alpha) / self.alpha
        self.daily_bins, self.weekly, self.choose = daily_bins, bool(weekly), float(choose)
        self.gate_z, self.adopt_after, self.min_std = _score_to_z(gate), adopt, float(min_std)
        self._chosen: I64 = np.zeros(0, dtype=np.int64)
        self.params |= {"halflife": halflife, "season_halflife": season_halflife,
                        "daily_bins": daily_bins, "weekly": weekly, "choose": choose,
                        "drift_halflife": drift_halflife,
                        "gate": gate, "adopt_after": adopt, "min_std": min_std}  # fmt: skip

    def model_of(self, device_id: str, metric: str) -> str:
        """The model scoring this series now: ``flat``, ``daily`` or ``weekly``."""
        slot = self.index.slots([device_id], [metric])
        return MODELS[int(self._choice(slot, self.last_us[slot])[0])]

    # -- the profiles ---------------------------------------------------------------------
    @staticmethod
    def _phase(ts: I64, period_us: int, bins: int) -> tuple[I64, I64, F64]:
        """The two bins a timestamp's phase lies between and the weight of the second."""
        pos = (ts % period_us) / period_us * bins - 0.5
        lo = np.floor(pos)
        frac = pos - lo
        i0 = lo.astype(np.int64) % bins
        return i0, (i0 + 1) % bins, frac

    def _profile(self, name: str, s: I64, ts: I64, period_us: int) -> tuple[F64, I64, I64, F64]:
        prof = self.a[name]
        bins = prof.shape[1]
        i0, i1, w = self._phase(ts, period_us, bins)
        return (1.0 - w) * prof[s, i0] + w * prof[s, i1], i0, i1, w

    def _learn_profile(
        self, name: str, s: I64, at: tuple[I64, I64, F64], err: F64, learn: B
    ) -> None:
        prof, cnt = self.a[name], self.a["n" + name[4:]]
        i0, i1, w = at
        for i, wt in ((i0, 1.0 - w), (i1, w)):
            n = cnt[s, i]
            a = np.maximum(self.alpha_s, 1.0 / (n + 1.0)) * wt * learn
            prof[s, i] += a * err
            cnt[s, i] = n + wt * learn

    # -- model choice -----------------------------------------------------------------------
    def _choice(self, s: I64, ts: I64) -> I64:
        a = self.a
        seen = ts - a["t0"][s]
        mse = a["mse"][s]
        daily = (seen >= 2 * DAY_US) & (mse[:, 1] < self.choose * mse[:, 0])
        weekly = daily & (seen >= 2 * WEEK_US) & (mse[:, 2] < self.choose * mse[:, 1])
        weekly &= self.weekly
        out: I64 = np.where(weekly, 2, np.where(daily, 1, 0))
        return out

    # -- one round ----------------------------------------------------------------------------
    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        a, ts, n = self.a, self._ts_us, self.count[s]
        first = n == 0
        t0 = np.where(first, ts, a["t0"][s]).astype(np.float64)
        a["t0"][s] = t0
        q = _resolution(a["quantum"], a["last"], s, x, first)
        level = np.where(first[:, None], x[:, None], a["level"][s])
        day = self._profile("prof_d", s, ts, DAY_US)
        week = self._profile("prof_w", s, ts, WEEK_US) if self.weekly else None
        sd = day[0]
        sw = week[0] if week is not None else np.zeros_like(x)
        base = np.stack([level[:, 0], level[:, 1] + sd, level[:, 1] + sd + sw], axis=1)
        r = x[:, None] - base
        c0, c1 = a["c0"][s], a["c1"][s]
        r_prev, v_e, v4 = a["r_prev"][s], a["v_e"][s], a["v4_e"][s]
        phi = np.clip(c1 / np.maximum(c0, 1e-300), 0.0, 0.98)
        e = r - phi * r_prev
        # spreads, floored: a quarter of the resolution, and a tiny fraction of the level
        floor2 = np.square(
            np.maximum(np.maximum(0.25 * q, self.min_std), 1e-6 * np.maximum(np.abs(x), 1.0))
        )[:, None]
        ready = (n >= self.warmup)[:, None]
        u = np.clip(e / np.sqrt(np.maximum(v_e, floor2)), -_CLIP, _CLIP)
        cus = np.where(ready, a["cus"][s] + self.alpha_c * (u - a["cus"][s]), 0.0)
        v_cus = a["v_cus"][s]
        since = np.maximum(n - self.warmup, 0).astype(np.float64)[:, None]
        # the statistics of the chosen model only: the others are kept up, not scored
        m = self._choice(s, ts)
        rows = np.arange(s.size)
        e_m, r_m, ve_m, c0_m = e[rows, m], r[rows, m], v_e[rows, m], c0[rows, m]
        phi_m, f2 = phi[rows, m], floor2[:, 0]
        excess = v4[rows, m] / np.maximum(ve_m * ve_m, 1e-300) - 3.0
        nu_e = np.clip(4.0 + 6.0 / np.maximum(excess, 1e-3), 4.5, 200.0)
        nu_r = np.clip(np.minimum(nu_e, self.ess * (1.0 - phi_m) / (1.0 + phi_m)), 3.0, 200.0)
        z_e = _t_to_z(e_m / np.sqrt(np.maximum(ve_m, f2)), nu_e)
        z_r = _t_to_z(r_m / np.sqrt(np.maximum(c0_m, f2)), nu_r)
        # the drift statistic's null spread: the white-noise one, or what this series has
        # shown if larger (the innovations of an imperfect model are not white); an
        # average of many innovations, so referred to the normal
        spread = np.sqrt(np.maximum(v_cus[rows, m], self.cus_sd**2))
        z_c = np.where(ready[:, 0], np.abs(cus[rows, m]) / spread, 0.0)
        raw = np.where(n >= 2, np.maximum(np.maximum(z_e, z_r), z_c), 0.0)
        # learn, unless gated
        gated = (raw > self.gate_z) & (n >= self.warmup)
        learn = ~gated
        adopt = self._run(s, r, gated)
        al = np.where(n >= self.warmup, self.alpha, 1.0 / (n + 1.0))[:, None]
        rs = np.stack([r[:, 0], r[:, 1], r[:, 1]], axis=1)
        new_level = np.where(learn[:, None], level + al * rs, level)
        new_level[:, 2] = new_level[:, 1]
        a["cus"][s] = cus
        av = np.maximum(self.alpha_v, 1.0 / (since + 1.0))
        a["v_cus"][s] = np.where(learn[:, None] & ready, v_cus + av * (cus * cus - v_cus), v_cus)
        self._learn_profile("prof_d", s, day[1:], r[:, 1], learn)
        if week is not None:
            self._learn_profile("prof_w", s, week[1:], r[:, 2], learn)
        started = ~first[:, None]
        ok = learn[:, None] & started
        a["c0"][s] = np.where(ok, c0 + al * (r * r - c0), c0)
        a["c1"][s] = np.where(ok & (n >= 2)[:, None], c1 + al * (r * r_prev - c1), c1)
        a["v_e"][s] = np.where(ok & (n >= 2)[:, None], v_e + al * (e * e - v_e), v_e)
        a["v4_e"][s] = np.where(ok & (n >= 2)[:, None], v4 + al * (e**4 - v4), v4)
        a["mse"][s] = np.where(ok, a["mse"][s] + al * (e * e - a["mse"][s]), a["mse"][s])
        a["r_prev"][s] = np.where(learn[:, None], r, r_prev)
        if adopt is not None:
            shift = adopt[0][:, None] * adopt[1]
            new_level = new_level + shift
            new_level[:, 2] = new_level[:, 1]
            a["r_prev"][s] = np.where(adopt[0][:, None], 0.0, a["r_prev"][s])
            a["cus"][s] = np.where(adopt[0][:, None], 0.0, a["cus"][s])
        a["level"][s] = new_level
        return raw

    def _run(self, s: I64, r: F64, gated: B) -> tuple[B, F64] | None:
        """Count consecutive gated readings and their mean residual per model; which
        series adopt their run now, and its mean residual. ``None`` when none is gated."""
        g, run = self.a["gated"], self.a["run_r"]
        if not gated.any():
            ended = s[g[s] > 0]
            g[ended] = 0.0
            run[ended] = 0.0
            return None
        k = np.where(gated, g[s] + 1.0, 0.0)
        mean = np.where(gated[:, None], run[s] + (r - run[s]) / np.maximum(k, 1.0)[:, None], 0.0)
        adopt: B = k >= self.adopt_after
        g[s] = k * ~adopt
        run[s] = mean * ~adopt[:, None]
        return adopt, mean

    def _p(self, raw: F64) -> F64:
        p: F64 = np.exp(log_ndtr(-np.abs(raw)) + np.log(2.0))
        return p


def _t_to_z(z: F64, nu: F64) -> F64:
    """A unit-variance deviate referred to Student's t on ``nu`` dof, as a normal |z|."""
    return _gaussian_equivalent(np.abs(z) * np.sqrt(nu / (nu - 2.0)), nu)
