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
squared error (exponentially weighted, each squared innovation clipped at 16 times the
model's innovation variance, so one anomaly does not decide) is below ``choose`` (0.8)
times that of the simpler model; it is kept while its error is at most the simpler one's.
A series without a cycle stays ``flat``; one with a daily cycle moves to ``daily``. A
profile cell learns as a plain average over its first updates and exponentially after
(``season_halflife``); no count is kept per cell: a series' readings fall evenly over the
phases, so each cell has had about ``n / bins`` of them.

**State** is per series, about 250 floats (the weekly profile is 168 of them). A round in
which every series has one reading (the live case) is scored in slot order, where the state
is read and written as slices, not gathered and scattered.

**Four statistics** from the chosen model, the largest reported (the score of the max of
four tests is at most ``log10(4)/12`` above each one's calibration):

* the innovation ``e / sd_e`` — a jump, a spike, the onset of a shift;
* the residual ``r / sd_r`` — how far from the baseline the reading is, so a long anomaly
  stays flagged after its onset (the innovation of its second reading is small);
* the drift statistic: an exponentially weighted mean (``drift_halflife`` readings) of the
  standardised innovations, clipped at ±4, against its null spread
  ``sqrt(a / (2 - a))`` — a shift or a ramp too small for any one reading to stand out;
* the volatility statistic: an exponentially weighted mean (``volatility_halflife``) of
  the squared clipped innovations against its own learned null mean and variance, as a
  scaled chi-square (Satterthwaite) made normal by Wilson and Hilferty's cube root — the
  noise growing louder (a loose mounting, a failing bearing) while the level holds. It
  is scored but does not gate learning (it says nothing about the level), and its null is
  learned with steps clipped at three of its standard deviations, so a burst does not
  teach it that bursts are normal.

**Calibration** holds under heavy tails and autocorrelation: each statistic is referred to
Student's *t* rather than the normal, with degrees of freedom from the innovations' own
kurtosis (``nu = 4 + 6 / excess``, exponentially weighted moments of the innovations about
their recent mean, so a run of biased innovations — a ramp — reads as a shift, not as a
heavy tail), and for the residual no
more than its effective sample size, ``ess · (1 - φ) / (1 + φ)``: the variance of a
strongly autocorrelated residual rests on few independent values. A quantised channel's
spreads are floored at a quarter of its resolution (as :class:`RobustBaseline` does).

**Gated, robust learning**: a ready reading scoring above ``gate`` (default 0.5,
``p = 10⁻⁶``) teaches nothing, so a long anomaly or a drift is not absorbed while it lasts.
The spreads and the AR term learn from a narrower band: not from a reading whose
innovation or drift statistic scores above ``spread_gate`` (default 0.3), so a slow ramp
or a faulty sensor's run of faults, each reading below the gate, is not learnt as a
wander; the kurtosis learns from every reading the level does (the tail readings are what
it measures). Each learnt square is clipped at five of its estimate's standard deviations
once a series has 8 readings behind it (Huber style), so one spike in the warm-up cannot
inflate the spreads the next spikes are judged against. The clip also caps how heavy a
tail the kurtosis can see: on Student-t(3) noise about 1e-4 of readings score 0.5 (5e-5
with the kurtosis unclipped, which lets a fleet's drifts teach it heavy tails). A lasting
change of regime is adopted at the ``adopt_after``-th consecutive gated reading (default
100): each model's level moves to where the run is now (its residual averaged over the
run's first readings, then exponentially with a half-life of 10 readings — not the run's
mean, which for a run that moved on, down and then up for good, is neither), its drift
statistic restarts, and learning resumes, the levels averaging afresh (the adopted level
counting as one reading), so a run adopted in mid-transition — a machine that stopped and
is starting again — is corrected in a few readings instead of leaving an offset that the
AR term would learn as a wander. The drift statistic's null spread learns squares
clipped at 2.5 of its spread and at 4 white-noise spreads, so a ramp (in a young series'
fast learning or in any later cycle) cannot teach the statistic that its own rise is
normal.

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

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from iotml.anomaly.base import SeriesDetector
from iotml.anomaly.seasonal import _gaussian_equivalent
from iotml.anomaly.univariate import _alpha, _resolution, _score_to_z, _two_sided_p
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

MODELS = ("flat", "daily", "weekly")
DAY_US = 86_400 * 10**6
WEEK_US = 7 * DAY_US
_WEEK_BINS = 168  # the weekly profile's cells: hours
_M = len(MODELS)
_PER_MODEL = ("c0", "c1", "r_prev", "v_e", "v2_d", "v4_e", "mse", "run_r", "cus", "v_cus")
_CLIP = 4.0  # standardised innovations are clipped here before they are accumulated
_VOL_WARMUP = 100  # readings after the warm-up before the volatility statistic scores
_HUBER = 5.0  # learnt squares are clipped at this many sds of their own estimate ...
_HUBER_FROM = 8  # ... once a series has this many readings (before, too rough an estimate)
_ADOPT_HALFLIFE = 10.0  # readings: a gated run's residual, as adopted, is this recent
_DRIFT_CLIP = 2.5  # the drift statistic's squares are clipped at this many of its spreads ...
_DRIFT_CAP = 4.0  # ... and at this many white-noise spreads before its null learns them
_Get = Callable[[str], F64]
_Put = Callable[[str, F64], None]
_At = tuple[I64, I64, F64, F64, F64]  # a profile read: two cells, their values, the weight
_Cells = tuple[F64, _At]


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
        Whether to run the weekly model at all (168 floats per series more).
    choose : float
        A profile model is chosen when its error is below ``choose`` times the simpler one's.
    drift_halflife : float
        Memory, in readings, of the drift statistic.
    volatility_halflife : float
        Memory, in readings, of the volatility statistic.
    gate, adopt_after
        Readings scoring above ``gate`` are not learned; ``adopt_after`` of them in a row
        are adopted as the new normal.
    spread_gate
        Readings whose innovation or drift statistic scores above this (at most ``gate``)
        do not teach the spreads and the AR term.
    warmup, min_std
        Readings before scores count; a floor on spreads, in the series' units.
    """

    name = "adaptive"
    fields: ClassVar[dict[str, float]] = {
        "level": 0.0,  # per model (width 3): flat, daily, weekly (daily's level is shared)
        "prof_d": 0.0,
        "prof_w": 0.0,
        "t0": 0.0,
        "last": 0.0,
        "quantum": 0.0,
        "gated": 0.0,
        "fresh": 0.0,  # 1 + learning readings since the series adopted a run (0: none lately)
        "model": 0.0,  # the model chosen at the series' last reading (index into MODELS)
        "vol": 1.0,  # the volatility statistic and its learned null mean and variance
        "m_vol": 1.0,
        "v_vol": 0.0,
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
        volatility_halflife: float = 20.0,
        gate: float = 0.5,
        adopt_after: int = 100,
        warmup: int = 30,
        min_std: float = 0.0,
        spread_gate: float = 0.3,
    ) -> None:
        if not isinstance(daily_bins, int) or daily_bins < 2:
            raise ConfigError(f"daily_bins must be an integer of at least 2, got {daily_bins!r}")
        if not 0.0 < choose <= 1.0:
            raise ConfigError(f"choose must be in (0, 1], got {choose!r}")
        if not 0.0 < gate <= 1.0:
            raise ConfigError(f"gate must be a score in (0, 1], got {gate!r}")
        if not 0.0 < spread_gate <= gate:
            raise ConfigError(f"spread_gate must be a score in (0, gate], got {spread_gate!r}")
        adopt = adopt_after
        if not (isinstance(adopt, int) and adopt >= 1):
            raise ConfigError(f"adopt_after must be at least 1 reading, got {adopt_after!r}")
        widths = dict.fromkeys(_PER_MODEL, _M) | {"level": _M}
        widths |= {"prof_d": daily_bins, "prof_w": _WEEK_BINS if weekly else 1}
        super().__init__(warmup=warmup, widths=widths, by_column=("prof_d", "prof_w"))
        self.alpha = _alpha(halflife)
        self.alpha_s = _alpha(season_halflife, "season_halflife")
        self.alpha_c = _alpha(drift_halflife, "drift_halflife")
        self.cus_sd = float(np.sqrt(self.alpha_c / (2.0 - self.alpha_c)))
        self.alpha_vol = _alpha(volatility_halflife, "volatility_halflife")
        self.vol_var = 2.0 * self.alpha_vol / (2.0 - self.alpha_vol)  # per squared mean
        self.alpha_v = _alpha(10.0 * halflife)  # the drift statistic's own spread: slow
        self.ess = (2.0 - self.alpha) / self.alpha
        self.daily_bins, self.weekly, self.choose = daily_bins, bool(weekly), float(choose)
        self.gate_z, self.adopt_after, self.min_std = _score_to_z(gate), adopt, float(min_std)
        self.spread_z = _score_to_z(spread_gate)
        self.adopt_rate = _alpha(_ADOPT_HALFLIFE)
        self._chosen: I64 = np.zeros(0, dtype=np.int64)
        self.params |= {"halflife": halflife, "season_halflife": season_halflife,
                        "daily_bins": daily_bins, "weekly": weekly, "choose": choose,
                        "drift_halflife": drift_halflife,
                        "volatility_halflife": volatility_halflife,
                        "gate": gate, "adopt_after": adopt, "min_std": min_std,
                        "spread_gate": spread_gate}  # fmt: skip

    def model_of(self, device_id: str, metric: str) -> str:
        """The model scoring this series now: ``flat``, ``daily`` or ``weekly``.

        Raises KeyError for a series this detector has not seen (asking does not add it).
        """
        slot = self.index.find(device_id, metric)
        if slot is None:
            raise KeyError(f"no series {device_id!r} / {metric!r} in this detector")
        s = np.array([slot])
        a = self.a
        seen = self.last_us[s] - a["t0"][s].astype(np.int64)
        return MODELS[int(self._choice(seen, a["mse"][s], a["model"][s])[0])]

    # -- the profiles ---------------------------------------------------------------------
    @staticmethod
    def _phase(in_period: I64, period_us: int, bins: int) -> tuple[I64, I64, F64]:
        """The two bins a phase (``ts % period_us``) lies between and the weight of the
        second. The position is in ``[-0.5, bins - 0.5)``, so the bins wrap by a compare,
        not by an integer modulo (a tenth of the cost)."""
        pos = in_period / period_us * bins - 0.5
        lo = np.floor(pos)
        frac = pos - lo
        i0 = lo.astype(np.int64)
        i0 += bins * (i0 < 0)
        i1 = i0 + 1
        i1 -= bins * (i1 == bins)
        return i0, i1, frac

    def _profile(self, name: str, s: I64, in_period: I64, period_us: int) -> _Cells:
        """The profile's value at each reading's phase, and where it was read: the two
        cells (flat indices into the profile), their values and the weight of the second."""
        prof = self.a[name]  # column by column: a phase bin's cells of every series in a row
        cap, bins = prof.shape
        i0, i1, w = self._phase(in_period, period_us, bins)
        f0, f1 = i0 * cap + s, i1 * cap + s
        flat = prof.T.reshape(-1)  # a view: prof.T is contiguous
        p0, p1 = flat.take(f0), flat.take(f1)
        return (1.0 - w) * p0 + w * p1, (f0, f1, p0, p1, w)

    def _learn_profile(self, name: str, at: _At, err: F64, rate: F64, learn: B) -> None:
        """Move the two cells a reading was read from towards it, by their weights (the
        cells of one round are distinct, so their values as read are still theirs)."""
        flat = self.a[name].T.reshape(-1)
        f0, f1, p0, p1, w = at
        step = rate * learn * err
        flat[f0] = p0 + (1.0 - w) * step
        flat[f1] = p1 + w * step

    # -- model choice -----------------------------------------------------------------------
    def _choice(self, seen: I64, mse: F64, held: F64) -> I64:
        """The model each series scores with now. A profile model is taken once the series
        has been seen for two of its periods and its error is below ``choose`` times the
        simpler one's; once taken, it is kept while its error is at most the simpler one's
        (so a model is not dropped and retaken as its error ratio hovers near ``choose``)."""
        daily = (seen >= 2 * DAY_US) & (mse[:, 1] < self.choose * mse[:, 0])
        daily |= (held >= 1) & (mse[:, 1] <= mse[:, 0])
        weekly = (seen >= 2 * WEEK_US) & (mse[:, 2] < self.choose * mse[:, 1])
        weekly |= (held == 2) & (mse[:, 2] <= mse[:, 1])
        weekly &= daily & self.weekly
        out: I64 = np.where(weekly, 2, np.where(daily, 1, 0))
        return out

    # -- one round ----------------------------------------------------------------------------
    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        a, ts, n = self.a, self._ts_us, self.count[s]
        if isinstance(self._at, slice):  # every series once, in slot order: slices
            k = s.size

            def get(name: str) -> F64:  # a view: read before its put (writes into it, as
                # level[first] = x, only anticipate that put)
                out: F64 = a[name][:k]
                return out

            def put(name: str, value: F64) -> None:
                a[name][:k] = value

        else:

            def get(name: str) -> F64:
                out: F64 = a[name][s]
                return out

            def put(name: str, value: F64) -> None:
                a[name][s] = value

        # the steady state, every series past its warm-up and first readings: the selects
        # below that would pick their first branch everywhere are skipped (same values)
        steady = bool(n.min() >= max(self.warmup, _HUBER_FROM, 2))
        first = n == 0
        if steady:
            t0 = get("t0")
        else:
            t0 = np.where(first, ts, get("t0"))
            put("t0", t0)
        q = _resolution(a["quantum"], a["last"], s, x, first)
        level = get("level")
        if first.any():
            level[first] = x[first, None]
        in_week = ts % WEEK_US  # a week is whole days: the day's phase follows from it
        day = self._profile("prof_d", s, in_week % DAY_US, DAY_US)
        week = self._profile("prof_w", s, in_week, WEEK_US) if self.weekly else None
        sd = day[0]
        sw = week[0] if week is not None else 0.0
        base = np.stack([level[:, 0], level[:, 1] + sd, level[:, 1] + sd + sw], axis=1)
        r = x[:, None] - base
        c0, c1, r_prev, v_e, v4 = get("c0"), get("c1"), get("r_prev"), get("v_e"), get("v4_e")
        v2_d = get("v2_d")
        phi = np.clip(c1 / np.maximum(c0, 1e-300), 0.0, 0.98)
        e = r - phi * r_prev
        ee = _square(e)
        # spreads, floored: a quarter of the resolution, and a tiny fraction of the level
        floor2 = _square(
            np.maximum(np.maximum(0.25 * q, self.min_std), 1e-6 * np.maximum(np.abs(x), 1.0))
        )[:, None]
        ready = (n >= self.warmup)[:, None]
        ve_floored = np.maximum(v_e, floor2)
        u = np.clip(e / np.sqrt(ve_floored), -_CLIP, _CLIP)
        cus = get("cus")
        # the innovation about its recent mean (the drift statistic before this reading),
        # for the kurtosis: a run of biased innovations (a ramp) is a shift, not a tail
        dev = _square(e - cus * np.sqrt(ve_floored))
        cus = cus + self.alpha_c * (u - cus)
        if not steady:
            cus = np.where(ready, cus, 0.0)
        v_cus = get("v_cus")
        since = np.maximum(n - self.warmup, 0).astype(np.float64)[:, None]
        # the statistics of the chosen model only: the others are kept up, not scored
        mse = get("mse")
        m = self._choice(ts - t0.astype(np.int64), mse, get("model"))
        put("model", m.astype(np.float64))
        at = np.arange(0, _M * s.size, _M) + m  # each row's chosen column, flat

        def pick(values: F64) -> F64:
            out: F64 = values.reshape(-1)[at]
            return out

        e_m, r_m, ve_m, c0_m, phi_m = pick(e), pick(r), pick(v_e), pick(c0), pick(phi)
        f2 = floor2[:, 0]
        v2 = pick(v2_d)
        excess = pick(v4) / np.maximum(v2 * v2, 1e-300) - 3.0
        nu_e = np.clip(4.0 + 6.0 / np.maximum(excess, 1e-3), 4.5, 200.0)
        nu_r = np.clip(np.minimum(nu_e, self.ess * (1.0 - phi_m) / (1.0 + phi_m)), 3.0, 200.0)
        z_e = _t_to_z(e_m / np.sqrt(np.maximum(ve_m, f2)), nu_e)
        z_r = _t_to_z(r_m / np.sqrt(np.maximum(c0_m, f2)), nu_r)
        # the drift statistic's null spread: the white-noise one, or what this series has
        # shown if larger (the innovations of an imperfect model are not white); an
        # average of many innovations, so referred to the normal
        spread = np.sqrt(np.maximum(pick(v_cus), self.cus_sd**2))
        z_c = np.abs(pick(cus)) / spread
        if not steady:
            z_c = np.where(ready[:, 0], z_c, 0.0)
        level_raw = np.maximum(np.maximum(z_e, z_r), z_c)
        if not steady:
            level_raw = np.where(n >= 2, level_raw, 0.0)
        # learn, unless gated by the level's statistics (a burst of noise says nothing
        # about where the level is: gating on it would freeze the level for the burst)
        gated = level_raw > self.gate_z
        if not steady:
            gated &= n >= self.warmup
        learn = ~gated
        # the spreads and the AR term learn from a narrower band: a slow ramp or a run of
        # faults that scores 0.3-0.5 reading by reading would otherwise be learnt as a
        # wander (phi towards 1, the residual's spread up) and hide the rest of itself
        # (judged by the innovation and drift statistics: a wander far from the level, as
        # a random walk's, is what the residual's spread must learn)
        spread_raw = np.maximum(z_e, z_c)  # as level_raw
        if steady:
            learn_spread = learn & (spread_raw <= self.spread_z)
        else:
            spread_raw = np.where(n >= 2, spread_raw, 0.0)
            learn_spread = learn & ~((spread_raw > self.spread_z) & (n >= self.warmup))
        # the volatility of the readings the level explains: while the level is off (an
        # excursion), every innovation against the held model is large, and counting
        # them would keep the statistic up long after the excursion ends
        z_v, vol, vol_dev = self._volatility(pick(u), n, ready[:, 0], learn, get, put)
        raw = np.maximum(level_raw, z_v)
        adopt = self._run(s, r, gated)
        al: F64 | float = (
            self.alpha
            if steady
            else np.where(n >= self.warmup, self.alpha, 1.0 / (n + 1.0))[:, None]
        )
        al_learn = al * learn[:, None]  # the learning rate, 0 where gated
        rs = np.stack([r[:, 0], r[:, 1], r[:, 1]], axis=1)
        # after an adoption the levels average afresh (the adopted level counting as one
        # reading), so a run adopted mid-transition, between two levels, is corrected in a
        # few readings instead of leaving an offset that the AR term would learn as a wander
        fresh, al_level = get("fresh"), al_learn
        if fresh.any():
            restart = np.where(fresh > 0, 1.0 / (fresh + 1.0), 0.0)
            al_level = np.maximum(al_learn, (restart * learn)[:, None])
            fresh = np.where((fresh > 0) & (restart >= self.alpha), fresh + learn, 0.0)
        new_level = level + al_level * rs
        av = np.maximum(self.alpha_v, 1.0 / (since + 1.0)) * (learn[:, None] & ready)
        put("v_cus", v_cus + av * (np.minimum(cus * cus, self._cus_cap(v_cus)) - v_cus))
        self._learn_volatility(vol, vol_dev, av[:, 0], get, put)
        # a cell's rate: a plain average over its first updates, then exponential; a
        # series' readings fall evenly over the phases, so a cell has had about
        # n / bins of them (no count is kept per cell)
        n_f = n.astype(np.float64)

        def cell_rate(bins: int) -> F64:
            out: F64 = np.maximum(self.alpha_s, bins / (n_f + bins))
            return out

        self._learn_profile("prof_d", day[1], r[:, 1], cell_rate(self.daily_bins), learn)
        if week is not None:
            self._learn_profile("prof_w", week[1], r[:, 2], cell_rate(_WEEK_BINS), learn)
        later = n >= 2  # not a series' first two readings (no previous residual before)
        rate = al * (learn & later)[:, None]  # the kurtosis
        rate_s = al * (learn_spread & later)[:, None]  # the spreads and the AR term
        # every product below is of values capped at 1e150, so finite: a rate of 0 (gated)
        # then leaves the state exactly as it was, however wild the reading
        r_c = np.clip(r, -_ROOT_BIG, _ROOT_BIG)
        # Huber: each learnt square is clipped at (5 sd)² of its current estimate (once
        # the series has 8 readings), so one spike learnt in the warm-up, or each of a
        # faulty sensor's, cannot inflate the spreads it is then judged against
        robust = (n >= _HUBER_FROM)[:, None]
        lim_r = _HUBER * np.sqrt(np.maximum(c0, floor2))
        cap = _HUBER**2 * ve_floored  # for squared innovations
        if not steady:
            lim_r = np.where(robust, lim_r, _ROOT_BIG)
            cap = np.where(robust, cap, np.inf)
        r_h, r_ph = np.clip(r_c, -lim_r, lim_r), np.clip(r_prev, -lim_r, lim_r)
        ee_h = np.minimum(ee, cap)
        # c0 learns from the first residual
        first_rate = rate_s if steady else al * (learn_spread & ~first)[:, None]
        put("c0", c0 + first_rate * (r_h * r_h - c0))
        put("c1", c1 + rate_s * (r_h * r_ph - c1))
        put("v_e", v_e + rate_s * (ee_h - v_e))
        # the kurtosis (of the innovations about their recent mean) learns from every
        # reading the level does, not only from the spreads' band: the tail readings are
        # what it measures (clipped like the rest: a wider clip, 10 sds, halves Student-t
        # noise's false alarms but lets the fleet's drifts teach it heavy tails)
        d2 = np.minimum(dev, np.minimum(cap, _ROOT_BIG))
        put("v2_d", v2_d + rate * (d2 - v2_d))
        put("v4_e", v4 + rate * (d2 * d2 - v4))
        # each model's error, for the choice, with every squared innovation clipped at
        # (4 sd)²: an anomaly the chosen model flags without gating it (a shift of a few
        # sds) must not make the simpler model look better and hand it the series
        mse_rate = al_learn if steady else al_learn * ~first[:, None]
        put("mse", mse + mse_rate * (np.minimum(ee, _CLIP**2 * ve_floored) - mse))
        r_prev = np.where(learn[:, None], r_c, r_prev)
        if adopt is not None:
            rows, now = adopt
            new_level[rows] += now
            r_prev[rows] = 0.0
            cus[rows] = 0.0
            fresh[rows] = 1.0
        put("fresh", fresh)
        new_level[:, 2] = new_level[:, 1]
        put("r_prev", r_prev)
        put("cus", cus)
        put("level", new_level)
        return raw

    def _cus_cap(self, v_cus: F64) -> F64:
        """Where the drift statistic's squares are clipped before its null spread learns
        them: at ``_DRIFT_CLIP`` of the spread as it stands (so a ramp, in the young
        series' fast learning or in any later cycle, cannot teach the statistic that its
        own rise is normal), and never above ``_DRIFT_CAP`` times the white-noise null (a
        series whose model's innovations are far from white is judged by the innovation
        and residual statistics; its drift statistic then rarely alarms)."""
        spread2 = np.maximum(v_cus, self.cus_sd**2)
        cap: F64 = np.minimum(_DRIFT_CLIP**2 * spread2, (_DRIFT_CAP * self.cus_sd) ** 2)
        return cap

    def _volatility(
        self, u: F64, n: I64, ready: B, learn: B, get: _Get, put: _Put
    ) -> tuple[F64, F64, F64]:
        """The volatility statistic of the chosen model's standardised innovations ``u``
        (clipped): an EWMA of ``u²`` against its learned null mean and variance, as a
        normal deviate (one-sided: only a rise counts). Under the null the EWMA is about
        a scaled chi-square on ``k = 2 mean² / variance`` degrees of freedom (Satterthwaite);
        Wilson and Hilferty's cube root makes that a normal deviate, so the skewed tail of
        a short average of squares is not read as a normal one. The EWMA moves only with
        readings that ``learn``. Also the new EWMA and its deviation from the null mean."""
        before = get("vol")
        vol = np.where(ready, before + self.alpha_vol * learn * (u * u - before), 1.0)
        put("vol", vol)
        mean = get("m_vol")
        mu = np.maximum(mean, 1e-3)
        var = np.maximum(get("v_vol"), self.vol_var * mu * mu)
        c = var / (mu * mu) / 9.0  # Wilson-Hilferty's 2 / (9 k)
        z = (np.cbrt(vol / mu) - (1.0 - c)) / np.sqrt(c)
        scored = ready & (n >= self.warmup + _VOL_WARMUP)
        return np.where(scored, np.maximum(z, 0.0), 0.0), vol, vol - mean

    def _learn_volatility(self, vol: F64, dev: F64, rate: F64, get: _Get, put: _Put) -> None:
        """Learn the volatility's null mean and variance, each step clipped at 3 of its
        standard deviations: a burst of noise (a variance anomaly) that lasts hundreds of
        readings moves them little, a lasting change of the noise is learned in time."""
        mean, var = get("m_vol"), get("v_vol")
        lim = 3.0 * np.sqrt(np.maximum(var, self.vol_var * mean * mean))
        step = np.clip(dev, -lim, lim)
        put("m_vol", mean + rate * step)
        put("v_vol", var + rate * (step * step - var))

    def _run(self, s: I64, r: F64, gated: B) -> tuple[I64, F64] | None:
        """Count consecutive gated readings and average their residual per model (a
        plain mean over the run's first readings, then exponentially: where the run is now);
        the rows whose series adopt their run now, and that residual (``None`` when none
        does). Only the rows in a run (or ending one) are touched."""
        g, run = self.a["gated"], self.a["run_r"]
        held = g[s]
        rows = np.flatnonzero(gated | (held > 0))
        if rows.size == 0:
            return None
        at, on = s[rows], gated[rows]
        k = np.where(on, held[rows] + 1.0, 0.0)
        # the run's residual, averaged over its first readings and then exponentially
        # (half-life 10): where the run has got to, not its mean, so a run that moved on
        # (a ramp, a machine down and back) adopts the level it is at now
        w = np.maximum(1.0 / np.maximum(k, 1.0), self.adopt_rate)[:, None]
        before = run[at]
        now = np.where(on[:, None], before + (r[rows] - before) * w, 0.0)
        adopt: B = k >= self.adopt_after
        g[at] = k * ~adopt
        run[at] = now * ~adopt[:, None]
        if not adopt.any():
            return None
        return rows[adopt], now[adopt]

    def _p(self, raw: F64) -> F64:
        return _two_sided_p(raw)


_ROOT_BIG = 1e150  # values are capped here before they are squared: no overflow to inf


def _square(x: F64) -> F64:
    """``x²``, of ``x`` capped at ``±1e150`` (finite, whatever ``x`` is)."""
    c = np.clip(x, -_ROOT_BIG, _ROOT_BIG)
    out: F64 = c * c
    return out


def _t_to_z(z: F64, nu: F64) -> F64:
    """A unit-variance deviate referred to Student's t on ``nu`` dof, as a normal |z|."""
    return _gaussian_equivalent(np.abs(z) * np.sqrt(nu / (nu - 2.0)), nu)
