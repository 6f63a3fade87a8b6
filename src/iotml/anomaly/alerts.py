"""From scores to alerts: a threshold with hysteresis, a minimum duration and a cooldown.

Per series, an **anomaly starts** when its score has stayed at or above ``on`` for at
least ``min_duration_s`` (a single reading when 0) and the series' last anomaly ended at
least ``cooldown_s`` earlier; it **ends** once its scores have stayed below ``off`` for
``min_quiet_s`` (at the first such reading when 0) — ``off`` ≤ ``on``, so a score hovering
at the threshold does not flap, and a quiet time keeps one anomaly whose scores dip from
splitting into several. Each start and end
is an event (kinds ``anomaly-start`` and ``anomaly-end``) with the score, a severity, the
metric and the detector responsible; the end carries the episode's duration and peak.

The rule is applied reading by reading in time order per series (vectorised over series,
like the detectors), and :meth:`AlertRule.apply` also returns each reading's state after
it — the ``is_anomaly`` column of ``iotml detect``.

>>> import numpy as np
>>> from iotml.types import Batch
>>> b = Batch.from_arrays(["p"] * 5, ["temp"] * 5, np.arange(5) * 10**6, np.zeros(5))
>>> scores = np.array([0.1, 0.7, 0.6, 0.2, 0.1])
>>> events, on = AlertRule(on=0.5, off=0.3).apply(b, scores, np.full(5, "robust", object))
>>> on.tolist(), events.table.column("kind").to_pylist()
([False, True, True, False, False], ['anomaly-start', 'anomaly-end'])
"""

from __future__ import annotations

__all__ = ["AlertRule"]

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import orjson

from iotml.anomaly._series import SeriesIndex, is_whole, rounds
from iotml.anomaly._state import pack, unpack
from iotml.errors import ConfigError, InvalidData
from iotml.types import Batch, Events

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_NONE = np.iinfo(np.int64).min
_NO_EVENTS = Events.empty()  # immutable: one for every batch that raises nothing


class AlertRule:
    """Hysteresis, minimum duration and cooldown per series; see the module docstring.

    ``model`` names what raised the alert in each event (``name@version``);
    ``critical_at`` is the score from which an alert's severity is ``critical``.
    """

    def __init__(
        self,
        *,
        on: float = 0.5,
        off: float = 0.3,
        min_duration_s: float = 0.0,
        min_quiet_s: float = 0.0,
        cooldown_s: float = 0.0,
        critical_at: float = 0.8,
        model: str = "iotml.anomaly@1",
    ) -> None:
        if not 0.0 < off <= on <= 1.0:
            raise ConfigError(f"thresholds need 0 < off <= on <= 1, got on={on!r}, off={off!r}")
        if min(min_duration_s, min_quiet_s, cooldown_s) < 0:
            raise ConfigError("min_duration_s, min_quiet_s and cooldown_s must not be negative")
        self.on, self.off = on, off
        self.min_us, self.cooldown_us = int(min_duration_s * 1e6), int(cooldown_s * 1e6)
        self.quiet_us = int(min_quiet_s * 1e6)
        self.critical_at, self.model = critical_at, model
        self.index = SeriesIndex()
        self._s: dict[str, npt.NDArray[Any]] = {}
        self._grow(0)

    _FIELDS: ClassVar[dict[str, Any]] = {
        "active": False, "above_since": _NONE, "below_since": _NONE, "start": _NONE,
        "last_end": _NONE, "peak": 0.0,
    }  # fmt: skip

    def _grow(self, n: int) -> None:
        have = self._s["active"].size if self._s else 0
        if self._s and n <= have:
            return
        cap = max(n, 2 * have, 64)
        for name, init in self._FIELDS.items():
            old = self._s.get(name, np.zeros(0, dtype=type(init)))
            fill = np.full(cap - old.size, init, dtype=old.dtype if old.size else type(init))
            self._s[name] = np.concatenate([old, fill])

    def apply(
        self,
        batch: Batch,
        score: F64,
        source: npt.NDArray[np.object_],
        *,
        slots: npt.NDArray[np.int64] | None = None,
        order: list[npt.NDArray[np.int64]] | None = None,
    ) -> tuple[Events, npt.NDArray[np.bool_]]:
        """Events raised by these scores, and whether each reading is inside an anomaly.

        ``slots`` and ``order`` may be passed when already known from this rule's
        :attr:`index` (a detector sharing it), to save working them out again.
        """
        n = len(batch)
        inside = np.zeros(n, dtype=bool)
        if n == 0:
            return Events.empty(), inside
        if slots is None or order is None:
            slots = self.index.slots(batch.device_id, batch.metric)
            order = rounds(slots, batch.ts_us)
        self._grow(len(self.index))
        ts = batch.ts_us
        whole = len(order) == 1 and is_whole(order[0], n)  # the live case: no gathers
        starts: list[I64] = []
        ends: list[tuple[I64, I64, F64]] = []
        for rows in order:
            s, t, sc = (slots, ts, score) if whole else (slots[rows], ts[rows], score[rows])
            started, ended, duration, peak = self._round(s, t, sc)
            starts.append(rows[started])
            ends.append((rows[ended], duration, peak))
            inside[rows] = self._s["active"][s]
        return self._events(batch, score, source, starts, ends), inside

    def open(
        self,
        keys: Sequence[tuple[str, str]],
        now_us: int,
        score: F64,
        source: str,
        silent_s: F64,
    ) -> Events:
        """Start anomalies for series that went silent (no reading to score, see
        :meth:`iotml.anomaly.Gap.silent`); the next reading that scores below ``off`` ends
        them. Series already in an anomaly, or cooling down, are left alone."""
        if not keys:
            return Events.empty()
        slots = self.index.slots([k[0] for k in keys], [k[1] for k in keys])
        self._grow(len(self.index))
        st = self._s
        last_end = st["last_end"][slots]
        cooled = (last_end == _NONE) | (now_us - last_end >= self.cooldown_us)
        start = ~st["active"][slots] & cooled & (score >= self.on)
        st["active"][slots] |= start
        st["start"][slots] = np.where(start, now_us, st["start"][slots])
        st["peak"][slots] = np.where(start, score, st["peak"][slots])
        st["above_since"][slots] = np.where(start, _NONE, st["above_since"][slots])
        records = []
        for i in np.flatnonzero(start).tolist():
            (device, metric), value, quiet = keys[i], float(score[i]), float(silent_s[i])
            detail = {
                "metric": metric,
                "detector": source,
                "silent_s": round(float(silent_s[i]), 3),
            }
            records.append({
                "ts": now_us, "device_id": device, "kind": "anomaly-start", "score": value,
                "severity": "critical" if value >= self.critical_at else "warning",
                "model": self.model, "detail": orjson.dumps(detail).decode(),
                "message": f"{metric}: no data for {quiet:.0f} s ({source}, score {value:.2f})",
            })  # fmt: skip
        return Events.from_records(records) if records else Events.empty()

    def _round(self, s: I64, ts: I64, score: F64) -> tuple[I64, I64, I64, F64]:
        """The rule on one reading of each of the series ``s``: the positions (in ``s``) of
        the readings that start and that end an anomaly, and the ended ones' durations
        and peaks.

        A reading below ``on`` of a series that is not in an anomaly, not above ``on``
        since an earlier reading and not just out of one (peak 0) changes nothing, so only
        the others — usually a few — go through :meth:`_step`.
        """
        st = self._s
        busy = np.flatnonzero(
            (score >= self.on)
            | st["active"][s]
            | (st["above_since"][s] != _NONE)
            | (st["peak"][s] != 0.0)
        )
        if busy.size == 0:
            return busy, busy, busy, np.zeros(0)
        start, end, duration, peak = self._step(s[busy], ts[busy], score[busy])
        return busy[start], busy[end], duration[end], peak[end]

    def _step(
        self, s: I64, ts: I64, score: F64
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], I64, F64]:
        """Hysteresis, duration and cooldown on readings of the distinct series ``s``:
        which start and which end an anomaly, and (where ending) duration and peak."""
        st = self._s
        active, above = st["active"][s], st["above_since"][s]
        high = score >= self.on
        above = np.where(high & (above == _NONE), ts, np.where(high, above, _NONE))
        cooled = (st["last_end"][s] == _NONE) | (ts - st["last_end"][s] >= self.cooldown_us)
        start = ~active & high & (ts - above >= self.min_us) & cooled
        low = score < self.off
        below = st["below_since"][s]
        below = np.where(active & low & (below == _NONE), ts, np.where(active & low, below, _NONE))
        end = active & low & (ts - below >= self.quiet_us)
        duration = np.where(end, ts - st["start"][s], 0)
        peak = np.where(end, np.maximum(st["peak"][s], score), 0.0)
        st["active"][s] = (active | start) & ~end
        st["start"][s] = np.where(start, ts, st["start"][s])
        st["peak"][s] = np.where(
            start, score, np.where(active, np.maximum(st["peak"][s], score), 0.0)
        )
        st["last_end"][s] = np.where(end, ts, st["last_end"][s])
        st["above_since"][s] = np.where(start | end, _NONE, above)
        st["below_since"][s] = np.where(start | end, _NONE, below)
        return start, end, duration, peak

    def _events(
        self,
        batch: Batch,
        score: F64,
        source: npt.NDArray[np.object_],
        starts: list[I64],
        ends: list[tuple[I64, I64, F64]],
    ) -> Events:
        devices, metrics, ts = batch.device_id, batch.metric, batch.ts_us
        records = [
            self._record("anomaly-start", i, devices, metrics, ts, score, source, {})
            for i in np.concatenate(starts).tolist()
        ]
        for rows, duration, peak in ends:
            for i, d, p in zip(rows.tolist(), duration.tolist(), peak.tolist(), strict=True):
                extra = {"duration_s": d / 1e6, "peak_score": round(p, 4)}
                records.append(
                    self._record("anomaly-end", i, devices, metrics, ts, score, source, extra)
                )
        records.sort(key=lambda r: r["ts"])
        return Events.from_records(records) if records else _NO_EVENTS

    def _record(
        self,
        kind: str,
        i: int,
        devices: Any,
        metrics: Any,
        ts: npt.NDArray[np.int64],
        score: F64,
        source: npt.NDArray[np.object_],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        metric, value = metrics[i].as_py(), float(score[i])
        peak = extra.get("peak_score", value)
        detail = {"metric": metric, "detector": str(source[i]), **extra}
        what = "started" if kind == "anomaly-start" else "ended"
        return {
            "ts": int(ts[i]),
            "device_id": devices[i].as_py(),
            "kind": kind,
            "score": value,
            "severity": "critical" if peak >= self.critical_at else "warning",
            "model": self.model,
            "message": f"{metric}: anomaly {what} ({source[i]}, score {value:.2f})",
            "detail": orjson.dumps(detail).decode(),
        }

    def state(self) -> bytes:
        """The per-series alert state, as bytes."""
        n = len(self.index)
        return pack({"index": self.index.to_state()}, {k: v[:n] for k, v in self._s.items()})

    def load_state(self, data: bytes) -> None:
        """Continue from :meth:`state`."""
        meta, saved = unpack(data, "alert-rule")
        missing = sorted(set(self._FIELDS) - set(saved))
        if missing:
            raise InvalidData(f"not a saved alert-rule state: no {missing}")
        arrays = {k: saved[k] for k in self._FIELDS}
        self.index = SeriesIndex.from_state(meta["index"])
        self._s = {}
        self._grow(len(self.index))
        for k, v in arrays.items():
            self._s[k][: v.size] = v
