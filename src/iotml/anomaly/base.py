"""The streaming-detector contract and the machinery every per-series detector shares.

A detector is fed whole batches: ``update(batch) -> Scores`` scores every reading with
what it had learned *before* that reading (predict-then-learn), then learns from it.
Per-series state lives in numpy arrays indexed by series slot, so a batch costs a few
array operations whatever the number of series (see :mod:`iotml.anomaly._series`).

**Scores** are calibrated to ``[0, 1]`` the same way for every detector: the detector's
statistic is turned into the probability ``p`` of a value at least that extreme under its
model of normal behaviour, and ``score = -log10(p) / 12``, clipped. So ``0.5`` means
"one in a million" for every series and every detector, and one threshold serves all. A
series is **ready** once it has ``warmup`` readings; before that its scores are 0.

**State** round-trips through bytes (:meth:`SeriesDetector.state` /
:meth:`SeriesDetector.load_state`): a restored detector scores what follows exactly as the
original would have.

>>> import numpy as np
>>> from iotml.types import Batch
>>> class Mean(SeriesDetector):
...     name = "mean"
...     fields = {"mean": 0.0}
...     def _step(self, s, x, dt):
...         raw = np.abs(x - self.a["mean"][s])
...         self.a["mean"][s] += 0.5 * (x - self.a["mean"][s])
...         return raw
...     def _p(self, raw):
...         return np.exp(-raw)
>>> det = Mean(warmup=1)
>>> b = Batch.from_arrays(["d"] * 3, ["t"] * 3, np.array([1, 2, 3]), np.array([0.0, 0.0, 9.0]))
>>> det.update(b).raw.tolist()
[0.0, 0.0, 9.0]
"""

from __future__ import annotations

__all__ = [
    "SCORE_DECADES",
    "Detector",
    "Plan",
    "Scores",
    "SeriesDetector",
    "p_to_score",
    "z_to_score",
]

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from iotml.anomaly._series import SeriesIndex, is_whole, rounds
from iotml.anomaly._state import pack, unpack
from iotml.errors import ConfigError, InvalidData
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_A = TypeVar("_A", bound=np.ndarray[Any, Any])

SCORE_DECADES = 12.0
"""A score of 1 means p ≤ 10⁻¹²; 0.5 means p = 10⁻⁶."""

_LN10 = float(np.log(10.0))


def p_to_score(p: npt.ArrayLike) -> F64:
    """Calibrated score of tail probabilities ``p``: ``-log10(p) / 12`` in ``[0, 1]``.

    >>> p_to_score([1.0, 1e-6, 1e-30]).tolist()
    [0.0, 0.5, 1.0]
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0)
    out: F64 = np.clip(-np.log10(p) / SCORE_DECADES, 0.0, 1.0) + 0.0  # + 0.0: no -0.0
    return out


def z_to_score(z: npt.ArrayLike) -> F64:
    """Score of standard-normal deviates, two-sided, without underflow for large ``|z|``.

    >>> [round(float(v), 3) for v in z_to_score([0.0, 3.0, 4.89, 40.0])]
    [0.0, 0.214, 0.5, 1.0]
    """
    z = np.abs(np.asarray(z, dtype=np.float64))
    log10_p = (log_ndtr(-z) + np.log(2.0)) / _LN10
    out: F64 = np.clip(-log10_p / SCORE_DECADES, 0.0, 1.0) + 0.0
    return out


@dataclass(frozen=True, slots=True)
class Scores:
    """A detector's verdict on each reading of a batch, aligned with the batch's rows.

    ``score`` is calibrated to ``[0, 1]`` (0 while a series warms up); ``raw`` is the
    detector's own statistic (a z-score, a run length, T²...); ``ready`` says which
    readings had a warmed-up series; ``source`` names, per reading, the detector whose
    score is reported (a combined detector picks the highest).
    """

    score: F64
    raw: F64
    ready: npt.NDArray[np.bool_]
    source: npt.NDArray[np.object_]

    @classmethod
    def of(cls, name: str, score: F64, raw: F64, ready: npt.NDArray[np.bool_]) -> Scores:
        """Scores all from the detector ``name``."""
        source = np.empty(score.size, dtype=object)
        source.fill(name)  # 10x faster than np.full for object arrays
        return cls(score, raw, ready, source)

    def __len__(self) -> int:
        return int(self.score.size)


@dataclass(frozen=True, slots=True)
class Plan:
    """A batch's readings arranged for per-series scoring, once for every detector that
    shares one :class:`SeriesIndex`: its rounds (``rows`` of the plan, their slots, values
    and times), each series at most once per round. A batch with every series once (the
    live case) is one round in slot order, where state arrays are read in sequence (and a
    detector may read and write them as slices); ``back`` then puts results back in batch
    order (``None``: the plan's order is the batch's)."""

    rounds: list[tuple[I64 | slice, I64, F64, I64]]
    size: int
    back: I64 | None
    whole: bool = False  # one round of every series in slot order

    @classmethod
    def of(cls, batch: Batch, slots: I64, order: list[I64], n_series: int) -> Plan:
        """The plan of ``batch`` given its slots and :func:`rounds`, in an index of
        ``n_series`` series."""
        x, ts, n = batch.values, batch.ts_us, len(batch)
        if len(order) == 1 and is_whole(order[0], n):  # the live case: no gathers
            if slots.size != n_series:
                return cls([(slice(None), slots, x, ts)], n, None)
            if is_whole(slots, slots.size):
                return cls([(slice(None), slots, x, ts)], n, None, whole=True)
            # every series once, in another order (``slots`` is then a permutation)
            at = np.empty_like(slots)
            at[slots] = np.arange(slots.size)
            return cls([(slice(None), np.arange(slots.size), x[at], ts[at])], n, slots, True)
        return cls([(rows, slots[rows], x[rows], ts[rows]) for rows in order], n, None)

    def in_batch_order(self, a: _A) -> _A:
        """``a`` (per reading, in the plan's order) in the batch's."""
        if self.back is None:
            return a
        out: _A = a[self.back]  # type: ignore[assignment]  # fancy indexing keeps the type
        return out


@runtime_checkable
class Detector(Protocol):
    """What the pipeline and ``iotml detect`` need of a streaming detector."""

    @property
    def name(self) -> str:
        """What alerts call this detector."""
        ...

    def update(self, batch: Batch) -> Scores:
        """Score each reading with the state before it, then learn from it."""
        ...

    def state(self) -> bytes:
        """Everything learned, as bytes."""
        ...

    def load_state(self, data: bytes) -> None:
        """Continue from what :meth:`state` returned."""
        ...


class SeriesDetector:
    """A detector whose state is a set of per-series arrays (``fields``, initial values).

    Subclasses set ``name`` and ``fields`` and implement ``_step(slots, x, dt_s)`` —
    score readings ``x`` of the distinct series ``slots`` against ``self.a[...]`` and then
    update those arrays; ``dt_s`` is the time since each series' previous reading (NaN for
    its first) — and ``_p(raw)``, the tail probability of a statistic. Their ``__init__``
    keeps its arguments in ``self.params`` (saved with the state).

    A field named in ``widths`` (``{field: k}``, given to ``__init__``) is 2-D, shape
    ``(series, k)``, for state with several values per series (a seasonal profile's
    bins); it is saved and restored like the others. One named in ``by_column`` is laid
    out column by column (Fortran order): a round of series that all read the same column
    (the same phase bin) then reads one contiguous stripe, not one cache line per series.
    During ``_step``, ``self._ts_us`` holds the timestamps (µs) of the readings being
    stepped, aligned with ``slots``, and ``self._at`` indexes their state: ``slots``, or
    ``slice(0, k)`` when the round is every series once in slot order (``slots`` is then
    ``0 .. k - 1``), so state is read as views and written as slices.
    """

    name: ClassVar[str] = "series"
    fields: ClassVar[dict[str, float]] = {}

    def __init__(
        self,
        *,
        warmup: int = 30,
        widths: Mapping[str, int] | None = None,
        by_column: Collection[str] = (),
    ) -> None:
        if warmup < 0:
            raise ConfigError(f"warmup must be 0 or more readings, got {warmup!r}")
        self.widths: dict[str, int] = dict(widths or {})
        self.by_column = frozenset(by_column)  # 2-D fields laid out column by column
        for field, k in self.widths.items():
            if field not in self.fields or not isinstance(k, int) or k < 1:
                raise ConfigError(
                    f"widths[{field!r}] = {k!r}: must name one of {sorted(self.fields)!r} "
                    "with a positive integer width"
                )
        self.warmup = warmup
        self._ts_us: I64 = np.zeros(0, dtype=np.int64)
        self._at: I64 | slice = self._ts_us
        self.params: dict[str, Any] = {"warmup": warmup}
        self.index = SeriesIndex()
        self.a: dict[str, F64] = {}
        self.count: I64 = np.zeros(0, dtype=np.int64)
        self.last_us: I64 = np.zeros(0, dtype=np.int64)
        self._grow(0)

    # -- per-series arrays ------------------------------------------------------------
    def _grow(self, n: int) -> None:
        have = self.count.size
        if n <= have and have:
            return
        cap = max(n, 2 * have, 64)
        for name, init in self.fields.items():
            tail = (self.widths[name],) if name in self.widths else ()
            old = self.a.get(name, np.zeros((0, *tail)))
            order: Literal["C", "F"] = "F" if name in self.by_column else "C"
            self.a[name] = np.full((cap, *tail), init, order=order)
            self.a[name][: len(old)] = old
        self.count = np.concatenate([self.count, np.zeros(cap - have, dtype=np.int64)])
        self.last_us = np.concatenate([self.last_us, np.zeros(cap - have, dtype=np.int64)])

    # -- the contract ---------------------------------------------------------------------
    def update(self, batch: Batch) -> Scores:
        """Score every reading with the state before it, then learn from it."""
        if not len(batch):
            return self.scored(batch, np.zeros(0, np.int64), [])
        slots = self.index.slots(batch.device_id, batch.metric)
        return self.scored(batch, slots, rounds(slots, batch.ts_us))

    def scored(self, batch: Batch, slots: I64, order: list[I64]) -> Scores:
        """:meth:`update` with the slots and rounds already known (``Combined`` shares them
        between detectors that share one :class:`SeriesIndex`)."""
        return Scores.of(self.name, *self.scored_arrays(batch, slots, order))

    def scored_arrays(
        self, batch: Batch, slots: I64, order: list[I64]
    ) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """:meth:`scored` as ``(score, raw, ready)``, without the per-reading source names."""
        plan = Plan.of(batch, slots, order, len(self.index))
        score, raw, ready = self.scored_plan(plan)
        back = plan.in_batch_order
        return back(score), back(raw), back(ready)

    def scored_plan(self, plan: Plan) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """Score ``plan``'s readings, in the plan's order (:meth:`Plan.in_batch_order`)."""
        self._grow(len(self.index))
        if len(plan.rounds) == 1 and isinstance(plan.rounds[0][0], slice):  # every row, once
            _, s, x, ts = plan.rounds[0]
            return self._round(s, x, ts, whole=plan.whole)
        n = plan.size
        raw, score = np.zeros(n), np.zeros(n)
        ready = np.zeros(n, dtype=bool)
        for rows, s, x, ts in plan.rounds:
            score[rows], raw[rows], ready[rows] = self._round(s, x, ts)
        return score, raw, ready

    def _round(
        self, s: I64, x: F64, ts: I64, *, whole: bool = False
    ) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """Score and learn one reading of each of the distinct series ``s`` (``whole``:
        ``s`` is every series in slot order)."""
        count, last = self.count[s], self.last_us[s]
        dt = np.where(count > 0, (ts - last) / 1e6, np.nan)
        self._ts_us, self._at = ts, slice(0, s.size) if whole else s
        raw = np.asarray(self._step(s, x, dt), dtype=np.float64)
        ok = count >= self.warmup
        score = np.where(ok, p_to_score(self._p(raw)), 0.0)
        self.count[s] = count + 1
        self.last_us[s] = np.maximum(last, ts)
        return score, raw, ok

    def _step(self, slots: I64, x: F64, dt_s: F64) -> F64:
        raise NotImplementedError

    def _p(self, raw: F64) -> F64:
        raise NotImplementedError

    @property
    def n_series(self) -> int:
        """Series seen so far."""
        return len(self.index)

    def nbytes_per_series(self) -> int:
        """State held per series (the arrays; the key strings come on top)."""
        return 8 * (sum(self.widths.get(k, 1) for k in self.fields) + 2)

    # -- state --------------------------------------------------------------------------
    def state(self) -> bytes:
        """Everything learned, as ``.npz`` bytes (params and keys as JSON inside)."""
        n = len(self.index)
        meta = {"detector": self.name, "params": self.params, "index": self.index.to_state()}
        arrays: dict[str, npt.NDArray[Any]] = {f"a_{k}": v[:n] for k, v in self.a.items()}
        arrays["count"], arrays["last_us"] = self.count[:n], self.last_us[:n]
        return pack(meta, arrays)

    def load_state(self, data: bytes) -> None:
        """Continue from :meth:`state` of a detector of this kind and these parameters."""
        meta, saved = unpack(data, f"{self.name!r} detector")
        try:
            arrays = {k[2:]: v for k, v in saved.items() if k.startswith("a_")}
            count, last = saved["count"], saved["last_us"]
        except KeyError as err:
            raise InvalidData(f"not a saved {self.name!r} detector state: {err}") from err
        if meta.get("detector") != self.name or meta.get("params") != self.params:
            raise ConfigError(
                f"saved state is for {meta.get('detector')!r} with {meta.get('params')!r}, "
                f"not {self.name!r} with {self.params!r}"
            )
        self.index = SeriesIndex.from_state(meta["index"])
        self.a, self.count, self.last_us = {}, np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._grow(len(self.index))
        n = len(self.index)
        for k, v in arrays.items():
            self.a[k][:n] = v
        self.count[:n], self.last_us[:n] = count, last
