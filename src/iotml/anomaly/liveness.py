"""Data-quality rules on sensors: flat-lined values, and series that stopped reporting.

* :class:`Stuck` — a run of equal readings longer than this series makes plausible.
* :class:`Gap` — a silence longer than this series' own sampling makes plausible, both
  on the reading that ends it and, through :meth:`Gap.silent`, on the clock while it
  lasts (a dead sensor sends nothing to score).

Both judge a series against its own history, so an integer counter that often repeats
and a noisy analog sensor that never does, or a 1 Hz and a 15-minute sensor, need no
per-series configuration. Range and rate rules are in :mod:`iotml.anomaly.quality`.

>>> import numpy as np
>>> from iotml.types import Batch
>>> v = np.random.default_rng(0).normal(20.0, 0.5, 60)
>>> v[50:] = v[49]  # the sensor freezes
>>> b = Batch.from_arrays(["d"] * 60, ["t"] * 60, np.arange(60) * 10**6, v)
>>> s = Stuck(warmup=20).update(b)
>>> s.raw[48:56].tolist()
[1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
>>> [round(float(x), 2) for x in s.score[48:56]]
[0.0, 0.0, 0.17, 0.33, 0.5, 0.67, 0.83, 1.0]
"""

from __future__ import annotations

__all__ = ["Gap", "Silence", "Stuck"]

import math
from typing import ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, log_ndtr

from iotml.anomaly.base import p_to_score
from iotml.anomaly.quality import _LogPDetector
from iotml.anomaly.univariate import _alpha
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_MIN_DT_S = 1e-6  # timestamps are microseconds
_ALARM_LOG_P = math.log(1e-6)  # a score of 0.5
_LONGEST_MEMORY = 5.0  # the longest recent run is forgotten 5x slower than the rates
_GAP_CLIP = 3.0  # after warm-up an interval is learned as at most 3 spreads from typical


class Stuck(_LogPDetector):
    """A flat-lined sensor: a run of equal readings, against the series' own repeat rate.

    **Statistic** (``raw``): the run length ``k`` — how many consecutive readings, this
    one included, are within ``tolerance`` (in the series' units; 0: exactly equal) of
    the reading that began the run. A reading that differs starts a new run of 1.

    **Model**: readings repeat with probability ``q``, so runs are geometric and a run
    continuing ``j`` readings more has probability ``q**j``. ``q`` is this series' own,
    the larger of two exponentially weighted estimates (``halflife`` in readings): how
    often a reading repeats the run before it, and ``1 - 1/A`` with ``A`` the mean run
    length a reading finds itself in (the two agree for geometric runs; ``A`` is larger
    when repeats come in long stretches, as from a coarse sensor on a slow signal). An
    integer counter repeats often, a noisy analog sensor almost never. Then::

        p = q ** (k - M)        (1 while k <= M)

    with ``M`` the longest run the series has shown lately (forgotten 5 times slower than
    ``q``), since a run as long as one it has already shown is no news; ``M`` is 1 for
    a series that never repeats, so ``p = q**(k - 1)``. ``q`` and ``M`` are taken as
    they were when the run began, so the alarm lasts until the value moves (a run that
    began during warm-up: see below). ``q`` is floored at
    ``min_repeat``: a series that never repeats reaches p = 10⁻⁶ (score 0.5) after 3
    repeats by default, a counter repeating 4 readings in 5 after about 60 + ``M``. A
    series with ``q >= max_repeat`` is constant by nature (a setpoint, a switch) and
    never alarms.

    **A stuck run teaches nothing**: once a run alarms (p ≤ 10⁻⁶) its readings are not
    learned, and what its first readings taught before it alarmed (``q``, ``A``, ``M``)
    is forgotten: they go back to their values when the run began (kept at its first
    repeat). Otherwise each spell of a sensor stuck half the time would teach its first
    few repeats, raising ``q`` and ``M`` spell by spell until the spells pass (in the
    simulated fleet ``M`` crept to ~70 readings within a day).

    **Warm-up**: ``warmup`` readings; the first average plainly, then the exponential
    weights take over. Every warm-up reading is learned, so a run that begins in warm-up
    cannot wait to be judged by a settled ``q``; left alone, a sensor stuck during its
    warm-up would teach that its longest normal run is the stuck spell, and every later
    spell as long would pass. So such a run is judged against the ``h`` readings before
    it (its first included) and the longest run ``M0`` they showed: with ``r`` repeats
    among them and a uniform prior on the repeat rate, ``e = k - M0`` more repeats have
    probability ``B(r + e + 1, h - r + 1) / B(r + 1, h - r + 1)`` (``B`` the beta
    function; ``(r + 1) / (h + 2)`` per repeat at first, tending to ``r / h``). While it
    is plausible it is learned as usual (and after warm-up scored as above); once that
    probability falls to 10⁻⁶ the run is stuck — forgotten and no longer learned, as
    above — and after warm-up it scores that probability until the value moves. A run
    from the series' first reading (``h = 0``) has nothing to be judged against:
    ``p = 1/k``, it is constant by nature rather than stuck. Analog noise that never
    repeated in 12 readings and then holds one value is stuck after 10 repeats.

    *Limitation*: a coarse sensor whose signal flattens out (the top of a slow cycle)
    can hold one value longer than it ever has before; until the series' history holds
    such a stretch, that run looks stuck.
    """

    name = "stuck"
    fields: ClassVar[dict[str, float]] = {
        "anchor": 0.0,
        "run": 0.0,
        "repeat": 0.0,
        "age": 1.0,
        "q_run": 0.0,
        "longest": 1.0,
        "m_run": 1.0,
        "repeat0": 0.0,
        "age0": 1.0,
        "longest0": 1.0,
    }

    def __init__(
        self,
        *,
        tolerance: float = 0.0,
        halflife: float = 500.0,
        warmup: int = 50,
        min_repeat: float = 0.01,
        max_repeat: float = 0.99,
    ) -> None:
        super().__init__(warmup=warmup)
        if not tolerance >= 0:
            raise ConfigError(f"tolerance must be >= 0 (series units), got {tolerance!r}")
        if not 0.0 < min_repeat < max_repeat <= 1.0:
            raise ConfigError(
                "need 0 < min_repeat < max_repeat <= 1, "
                f"got min_repeat={min_repeat!r}, max_repeat={max_repeat!r}"
            )
        self.alpha = _alpha(halflife)
        self.decay = 1.0 - _alpha(_LONGEST_MEMORY * halflife)
        self.tolerance, self.min_repeat, self.max_repeat = tolerance, min_repeat, max_repeat
        self.params |= {
            "tolerance": tolerance,
            "halflife": halflife,
            "min_repeat": min_repeat,
            "max_repeat": max_repeat,
        }

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        # each per-series field is gathered once and scattered once: at 10,000 series a
        # gather or a scatter costs as much as the arithmetic of a whole step
        n, st, at = self.count[s], self.a, self._at
        anchor, repeat, age, longest = (st[k][at] for k in ("anchor", "repeat", "age", "longest"))
        same = (n > 0) & (np.abs(x - anchor) <= self.tolerance)
        run = np.where(same, st["run"][at] + 1.0, 1.0)
        began: F64 = 1.0 - run + n  # the reading that began the run
        # judged by q and M as they were when the run began (now, if it began in warm-up:
        # then see _judge_young)
        q_run, m_run = np.maximum(repeat, 1.0 - 1.0 / age), longest
        frozen = same & (began >= self.warmup)
        if frozen.any():
            q_run = np.where(frozen, st["q_run"][at], q_run)
            m_run = np.where(frozen, st["m_run"][at], m_run)
        excess = np.maximum(run - np.maximum(m_run, 1.0), 0.0)
        q_eff = np.clip(q_run, self.min_repeat, self.max_repeat)
        log_p = np.where(q_run >= self.max_repeat, 0.0, excess * np.log(q_eff))
        st["q_run"][at], st["m_run"][at], st["run"][at] = q_run, m_run, run
        st["anchor"][at] = np.where(same, anchor, x)
        stuck = (n >= self.warmup) & (log_p <= _ALARM_LOG_P)
        stuck[self._judge_young(s, run, began, np.flatnonzero(same & ~frozen), log_p)] = True
        self._learn(s, n, same, run, stuck, {"repeat": repeat, "age": age, "longest": longest})
        self._log_p = log_p
        return run

    def _judge_young(self, s: I64, run: F64, began: F64, rows: I64, log_p: F64) -> I64:
        """Which of ``rows`` (runs that began in warm-up) are implausible given the readings
        before them; their ``log_p`` is set to that judgement."""
        if not rows.size:
            return rows
        st, s = self.a, s[rows]
        h = began[rows]  # readings before the run, its first included
        r = st["repeat0"][s] * h  # the repeats among them
        e = np.maximum(run[rows] - np.maximum(st["longest0"][s], 1.0), 0.0)
        # P(e more repeats | r repeats in h) under a uniform prior on the repeat rate
        judged = betaln(r + e + 1.0, h - r + 1.0) - betaln(r + 1.0, h - r + 1.0)
        implausible = judged <= _ALARM_LOG_P
        stuck: I64 = rows[implausible]
        log_p[stuck] = judged[implausible]
        return stuck

    def _learn(
        self, s: I64, n: I64, same: BoolArray, run: F64, stuck: BoolArray, old: dict[str, F64]
    ) -> None:
        """Learn each reading, except those of a stuck run, which also forget what the
        run taught before it was found stuck (the ``…0`` fields, kept at its start)."""
        st = self.a
        learn = (n > 0) & ~stuck
        a = np.where(learn, np.maximum(self.alpha, 1.0 / np.maximum(n, 1)), 0.0)
        learned = {
            "repeat": old["repeat"] + a * (same - old["repeat"]),
            "age": old["age"] + a * (run - old["age"]),
            "longest": np.where(
                learn, np.maximum(old["longest"] * self.decay, run), old["longest"]
            ),
        }
        first = np.flatnonzero(run == 2.0)  # a run's first repeat: state as the run began
        forget = np.flatnonzero(stuck)
        for k, v in learned.items():
            if first.size:
                st[k + "0"][s[first]] = old[k][first]
            if forget.size:
                v[forget] = st[k + "0"][s[forget]]
            st[k][self._at] = v


class Silence(NamedTuple):
    """Series silent at some instant: their keys, how long, and the calibrated score."""

    keys: list[tuple[str, str]]
    """``(device_id, metric)`` of each silent series."""
    gap_s: F64
    """Seconds since each one's newest reading."""
    score: F64
    """The score a reading arriving now would get from :class:`Gap`."""


class Gap(_LogPDetector):
    """A series silent for longer than its own sampling makes plausible.

    **Model**: per series, an exponential average (``halflife`` in intervals) of
    ``log Δt`` and of its variance. Log-space makes a typical interval robust to
    irregular sampling (it is the geometric mean: the median for log-normal jitter),
    and after warm-up each interval is learned clipped at 3 spreads from typical, so a
    long silence barely moves what is expected.

    **Expected**: a gap is *late* when it exceeds ``factor`` typical intervals;
    only a late gap is scored, with ``p`` the upper tail of the normal distribution of
    ``log Δt`` — its spread floored at ``min_spread`` (0.3: ±35 % jitter is normal even
    for a clockwork sensor). With the defaults, a gap of just over 2 typical intervals scores
    ≈ 0.17, 5 intervals ≈ 0.6, 10 intervals 1 for a regular series; a jittery series
    needs more.

    **Statistic** (``raw``): the gap before a reading, in typical intervals. A reading's
    score is about the silence that ended at it; :meth:`silent` scores silences still
    running. **Warm-up**: ``warmup`` intervals (``warmup + 1`` readings).

    >>> import numpy as np
    >>> from iotml.types import Batch
    >>> t = np.arange(40) * 10**6
    >>> t[30:] += 9 * 10**6  # ten seconds between readings 29 and 30
    >>> det = Gap(warmup=10)
    >>> s = det.update(Batch.from_arrays(["d"] * 40, ["t"] * 40, t, np.zeros(40)))
    >>> int(np.argmax(s.score)), float(s.raw[30]), float(s.score[30])
    (30, 10.0, 1.0)
    >>> quiet = det.silent(int(t[-1]) + 10 * 10**6)
    >>> quiet.keys, quiet.gap_s.tolist(), quiet.score.tolist()
    ([('d', 't')], [10.0], [1.0])
    """

    name = "gap"
    fields: ClassVar[dict[str, float]] = {"log_dt": 0.0, "var": 0.0}

    def __init__(
        self,
        *,
        halflife: float = 100.0,
        warmup: int = 20,
        factor: float = 2.0,
        min_spread: float = 0.3,
    ) -> None:
        super().__init__(warmup=warmup + 1)  # the base counts readings, not intervals
        if not factor >= 1:
            raise ConfigError(f"factor must be >= 1 (typical intervals), got {factor!r}")
        if not min_spread > 0:
            raise ConfigError(f"min_spread must be > 0 (in log-seconds), got {min_spread!r}")
        self.alpha = _alpha(halflife)
        self.factor, self.min_spread = float(factor), float(min_spread)
        self.params = {
            "warmup": warmup,
            "halflife": halflife,
            "factor": factor,
            "min_spread": min_spread,
        }

    def _log_gap_p(self, gap_s: F64, log_dt: F64, var: F64) -> F64:
        """``log p`` of each silence: the normal tail of ``log gap``, only where it is late
        (elsewhere 0, and ``log_ndtr`` costs more than the rest of the detector)."""
        late = np.flatnonzero(gap_s > self.factor * np.exp(log_dt))
        out: F64 = np.zeros(gap_s.shape)
        if late.size:
            y = np.log(np.maximum(gap_s[late], _MIN_DT_S))
            out[late] = log_ndtr(-(y - log_dt[late]) / self._spread(var[late]))
        return out

    def _spread(self, var: F64) -> F64:
        out: F64 = np.maximum(np.sqrt(var), self.min_spread)
        return out

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        n, at = self.count[s], self._at
        log_dt, var = self.a["log_dt"][at], self.a["var"][at]
        gap = np.where(n > 0, dt_s, 0.0)
        known = n > 1  # at least one interval learned
        raw = np.where(known, gap / np.exp(log_dt), 0.0)
        self._log_p = self._log_gap_p(np.where(known, gap, 0.0), log_dt, var)
        y = np.log(np.maximum(gap, _MIN_DT_S))
        lim = np.where(n >= self.warmup, _GAP_CLIP * self._spread(var), np.inf)
        y = np.clip(y, log_dt - lim, log_dt + lim)
        # a repeated timestamp is not a sampling interval: it teaches nothing
        a = np.where(gap > 0, np.maximum(self.alpha, 1.0 / np.maximum(n, 1)), 0.0)
        d = y - log_dt
        self.a["log_dt"][at] = log_dt + a * d
        self.a["var"][at] = (1.0 - a) * (var + a * d * d)
        return raw

    def silent(self, now_us: int, min_score: float = 0.0) -> Silence:
        """Warmed-up series whose silence at ``now_us`` scores above ``min_score``.

        By default that is every series late by more than ``factor`` typical intervals;
        the score is what a reading arriving at ``now_us`` would get.
        """
        n = len(self.index)
        gap = np.maximum(now_us - self.last_us[:n], 0) / 1e6
        ready = self.count[:n] >= self.warmup
        log_dt, var = self.a["log_dt"][:n], self.a["var"][:n]
        score = np.where(ready, p_to_score(np.exp(self._log_gap_p(gap, log_dt, var))), 0.0)
        hit = np.flatnonzero(score > min_score)
        keys = [self.index.keys[i] for i in hit.tolist()]
        return Silence(keys, gap[hit], score[hit])
