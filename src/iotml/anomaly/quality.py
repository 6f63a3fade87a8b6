"""Data-quality rules on values: readings outside their valid range, values that jump.

* :class:`OutOfRange` — a hard rule per metric: a reading outside its metric's
  ``(low, high)`` range scores 1, one inside scores 0.
* :class:`RateOfChange` — ``|Δx/Δt|`` per series against what the series' own rate
  usually is (or against a configured maximum rate per metric).

The sensor-liveness rules (stuck and silent sensors) are in :mod:`iotml.anomaly.liveness`.

>>> import numpy as np
>>> from iotml.types import Batch
>>> det = OutOfRange({"humidity": (0.0, 100.0)})
>>> b = Batch.from_arrays(["d"] * 3, ["humidity"] * 3, [1, 2, 3], [40.0, 41.0, 250.0])
>>> s = det.update(b)
>>> s.raw.tolist(), s.score.tolist()
([0.0, 0.0, 1.5], [0.0, 0.0, 1.0])
"""

from __future__ import annotations

__all__ = ["OutOfRange", "RateOfChange"]

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from iotml.anomaly._series import SeriesIndex
from iotml.anomaly.base import SeriesDetector
from iotml.anomaly.univariate import _alpha
from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_HARD_P = 1e-12
"""The tail probability a broken hard rule reports: a score of exactly 1."""

_MIN_DT_S = 1e-6  # timestamps are microseconds: no two distinct readings are closer
_LN10 = math.log(10.0)
_RATE_CLIP = 4.0  # after warm-up a rate is learned as at most this many RMS rates
_MIN_MOVES = 5  # readings that moved before a series' rate scale is trusted


class _PerMetric:
    """Per-series rows of a per-metric setting (a range, a maximum rate); NaN where unset.

    A series' row is looked up once, when it first appears in ``index``; a lookup for a
    batch is then one fancy-index, whatever the number of readings.
    """

    def __init__(self, table: Mapping[str, list[float]], width: int) -> None:
        self.table, self.width = dict(table), width
        self._index: SeriesIndex | None = None
        self._rows = np.full((0, width), np.nan)

    def rows(self, index: SeriesIndex, slots: I64) -> F64:
        """The setting of each slot's metric, shape ``(len(slots), width)``."""
        if index is not self._index:  # a restored detector gets a new index
            self._index, self._rows = index, np.full((0, self.width), np.nan)
        have, n = len(self._rows), len(index)
        if n > have:
            unset = [math.nan] * self.width
            new = [self.table.get(metric, unset) for _, metric in index.keys[have:n]]
            self._rows = np.vstack([self._rows, np.asarray(new, dtype=np.float64)])
        out: F64 = self._rows[slots]
        return out


class _LogPDetector(SeriesDetector):
    """A per-series detector whose tail probability depends on per-series state.

    ``_p(raw)`` of :class:`SeriesDetector` sees only the statistic, but a run of 5 equal
    readings is surprising in one series and normal in another. So ``_step`` also computes
    ``log p`` and keeps it in ``self._log_p``; the base calls ``_p`` right after ``_step``
    on the same readings, and ``_p`` hands it back.
    """

    _log_p: F64 = np.zeros(0)

    def _p(self, raw: F64) -> F64:
        if self._log_p.shape != raw.shape:
            raise RuntimeError(f"{self.name}: _p must follow _step on the same readings")
        p: F64 = np.exp(self._log_p)
        return p


def _checked_ranges(ranges: Mapping[str, tuple[float, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for metric, bounds in ranges.items():
        try:
            low, high = (float(b) for b in bounds)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"ranges[{metric!r}] must be a (low, high) pair of numbers, got {bounds!r}"
            ) from err
        if not low <= high:  # also rejects NaN
            raise ConfigError(f"ranges[{metric!r}] must have low <= high, got {bounds!r}")
        out[str(metric)] = [low, high]
    return out


class OutOfRange(SeriesDetector):
    """Readings outside their metric's valid ``(low, high)`` range (inclusive); a hard rule.

    ``ranges`` maps a metric name to its range, like the pipeline's ``RulesStage``; a
    bound may be infinite (a one-sided range). The statistic is how far outside the
    reading is, in range widths (a one-sided range: in units of ``max(|bound|, 1)``), 0
    inside. ``p`` is 10⁻¹² outside (score 1) and 1 inside: there is nothing to learn, so
    no warm-up (a series' very first reading is judged too). Readings of metrics without a
    range score 0.
    """

    name = "out-of-range"
    fields: ClassVar[dict[str, float]] = {}

    def __init__(self, ranges: Mapping[str, tuple[float, float]], *, warmup: int = 0) -> None:
        super().__init__(warmup=warmup)
        checked = _checked_ranges(ranges)
        self.params |= {"ranges": checked}
        self._bounds = _PerMetric(checked, 2)

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        b = self._bounds.rows(self.index, s)
        low, high = b[:, 0], b[:, 1]
        width = high - low
        finite = np.where(np.isfinite(low), np.abs(low), np.abs(high))
        width = np.where(np.isfinite(width), width, np.maximum(np.nan_to_num(finite), 1.0))
        width = np.maximum(width, 1e-12 * np.maximum(np.abs(np.nan_to_num(low)), 1.0))
        excess = np.fmax(np.fmax(low - x, x - high), 0.0)  # fmax: NaN (no range) -> 0
        raw: F64 = np.where(excess > 0, excess / np.where(np.isnan(width), 1.0, width), 0.0)
        return raw

    def _p(self, raw: F64) -> F64:
        return np.where(raw > 0, _HARD_P, 1.0)


class RateOfChange(_LogPDetector):
    """``|Δx/Δt|`` per series against the series' usual rate, or a configured maximum.

    The rate is measured over at least the series' typical interval (an exponential
    average of ``log Δt``), so a reading that arrives early — jitter, a burst — is not
    mistaken for a fast change. Its scale is the exponentially weighted root mean square
    of the rate over the readings that moved (a steady ramp has a scale near its slope;
    a counter or a coarse sensor that moves in steps, the size of its usual step); after
    warm-up each rate is learned clipped at 4 RMS, so a jump does not widen the scale it
    is judged by. The statistic is ``z = |rate| / RMS`` and ``p`` the two-sided normal
    tail, once the series has moved 5 times (before that, and after ``warmup``, 0).

    ``max_rate`` maps a metric to its largest plausible ``|Δx/Δt|`` (units per second,
    over the actual ``Δt``); those metrics follow the hard rule instead: the statistic is
    ``|rate| / max_rate``, and ``p`` is 10⁻¹² above 1, else 1. ``min_rate`` (units per
    second) floors the learned scale, for series that are flat for long stretches.

    >>> import numpy as np
    >>> from iotml.types import Batch
    >>> v = np.random.default_rng(0).normal(0.0, 0.1, 100) + np.arange(100.0)  # a ramp
    >>> v[80:] += 10.0  # a step
    >>> b = Batch.from_arrays(["d"] * 100, ["x"] * 100, np.arange(100) * 10**6, v)
    >>> s = RateOfChange(warmup=20).update(b)
    >>> int(np.argmax(s.score)), float(s.score[80]), float(s.score[20:80].max()) < 0.1
    (80, 1.0, True)
    """

    name = "rate"
    fields: ClassVar[dict[str, float]] = {"prev": 0.0, "log_dt": 0.0, "ms": 0.0, "moves": 0.0}

    def __init__(
        self,
        max_rate: Mapping[str, float] | None = None,
        *,
        halflife: float = 200.0,
        warmup: int = 30,
        min_rate: float = 0.0,
    ) -> None:
        super().__init__(warmup=warmup)
        self.alpha = _alpha(halflife)
        limits = {str(k): [float(v)] for k, v in (max_rate or {}).items()}
        for metric, (v,) in limits.items():
            if not v > 0:
                raise ConfigError(f"max_rate[{metric!r}] must be positive, got {v!r}")
        if not min_rate >= 0:
            raise ConfigError(f"min_rate must be >= 0 (units per second), got {min_rate!r}")
        self.min_rate = float(min_rate)
        self.params |= {"max_rate": limits, "halflife": halflife, "min_rate": min_rate}
        self._limits = _PerMetric(limits, 1)

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        n = self.count[s]
        prev, log_dt, ms = self.a["prev"][s], self.a["log_dt"][s], self.a["ms"][s]
        dt = np.where(n > 0, dt_s, 1.0)
        dx = np.where(n > 0, x - prev, 0.0)
        typical = np.where(n > 1, np.exp(log_dt), dt)
        rate = np.abs(dx) / np.maximum(dt, typical)
        floor = np.maximum(self.min_rate, 1e-6 * np.maximum(np.abs(prev), 1.0) / typical)
        scale = np.maximum(np.sqrt(ms), floor)
        z = rate / scale
        limit = self._limits.rows(self.index, s)[:, 0]
        hard = ~np.isnan(limit)
        over = np.abs(dx) / np.maximum(dt, _MIN_DT_S) / np.where(hard, limit, 1.0)
        known = self.a["moves"][s] >= _MIN_MOVES
        raw = np.where(hard, over, np.where(known, z, 0.0))
        self._log_p = np.where(
            hard,
            np.where(over > 1.0, math.log(_HARD_P), 0.0),
            np.where(known, np.log(2.0) + log_ndtr(-z), 0.0),
        )
        self._learn(s, n, x, dt, rate, scale)
        return raw

    def _learn(self, s: I64, n: I64, x: F64, dt: F64, rate: F64, scale: F64) -> None:
        log_dt, ms, moves = self.a["log_dt"][s], self.a["ms"][s], self.a["moves"][s]
        a = np.where((n > 0) & (dt > 0), np.maximum(self.alpha, 1.0 / np.maximum(n, 1)), 0.0)
        y = np.log(np.maximum(dt, _MIN_DT_S))
        # one long gap moves the typical interval by at most a factor of 10^a
        y = np.where(n > 1, np.clip(y, log_dt - _LN10, log_dt + _LN10), y)
        self.a["log_dt"][s] = log_dt + a * (y - log_dt)
        # the scale is learned from readings that moved: a series that moves in steps
        # (a counter, a coarse sensor) is judged by its usual step, not by its stillness
        moved = (n > 0) & (x != self.a["prev"][s])
        moves = moves + moved
        b = np.where(moved, np.maximum(self.alpha, 1.0 / np.maximum(moves, 1.0)), 0.0)
        trusted = (n >= self.warmup) & (moves > _MIN_MOVES)
        rate = np.where(trusted, np.minimum(rate, _RATE_CLIP * scale), rate)
        self.a["ms"][s] = ms + b * (rate * rate - ms)
        self.a["moves"][s] = moves
        self.a["prev"][s] = x
