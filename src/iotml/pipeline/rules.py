"""Built-in rules: readings outside their valid range, and sensors that went silent.

>>> import numpy as np
>>> from iotml.types import Batch
>>> stage = RulesStage(ranges={"temperature": (-40.0, 125.0)})
>>> b = Batch.from_arrays(["p1", "p1"], ["temperature", "temperature"], [1, 2], [20.0, 480.0])
>>> stage.process(b, now=2).to_pylist()[0]["message"]
'temperature = 480 outside [-40, 125]'
"""

from __future__ import annotations

__all__ = ["RulesStage"]

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotml.types import Batch, Events

_MODEL = "rules@1"


class RulesStage:
    """Out-of-range readings (per metric) and stale series (no reading for ``stale_after``).

    ``ranges`` maps a metric name to its inclusive ``(low, high)`` valid range. A series
    goes stale when its newest reading is older than ``stale_after`` on the pipeline's
    clock — checked on every batch and on every clock tick, so a site where everything has
    gone silent still alerts. It raises one ``stale`` event, and is watched again once it
    reports. Only live readings arm the watch: one already older than ``stale_after`` when
    it arrives (imported history, a backlog from before the server started) is history,
    and never makes its series stale.
    """

    name = "rules"

    def __init__(
        self,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        stale_after: timedelta | None = None,
    ) -> None:
        self.ranges = dict(ranges or {})
        self.stale_after_us = (
            None if stale_after is None else int(stale_after.total_seconds() * 1e6)
        )
        self._last_seen: dict[tuple[str, str], int] = {}
        self._stale: set[tuple[str, str]] = set()

    def process(self, batch: Batch, now: int) -> Events:
        """Out-of-range readings of ``batch``, and series that went stale by ``now``."""
        parts = [self._out_of_range(batch)]
        if self.stale_after_us is not None:
            self._seen(batch, now)
            parts.append(self._staleness(now))
        return Events.concat(p for p in parts if len(p))

    def tick(self, now: int) -> Events:
        """Series that went stale by ``now``, while no data arrives at all."""
        if self.stale_after_us is None:
            return Events.empty()
        return self._staleness(now)

    def _out_of_range(self, batch: Batch) -> Events:
        if not self.ranges or not len(batch):
            return Events.empty()
        table = batch.table
        lows = pc.fill_null(pc.index_in(table.column("metric"), pa.array(list(self.ranges))), -1)
        known = pc.greater_equal(lows, 0).to_numpy(zero_copy_only=False)
        if not known.any():
            return Events.empty()
        bounds = np.array(list(self.ranges.values()), dtype=np.float64)
        idx = lows.to_numpy(zero_copy_only=False)
        values = batch.values
        low, high = bounds[np.maximum(idx, 0), 0], bounds[np.maximum(idx, 0), 1]
        bad = known & ((values < low) | (values > high))
        rows = np.flatnonzero(bad)
        if not rows.size:
            return Events.empty()
        hit = table.take(pa.array(rows))
        records = []
        for r, row in zip(rows.tolist(), hit.to_pylist(), strict=True):
            lo, hi = float(low[r]), float(high[r])
            span = max(hi - lo, 1e-12)
            excess = (lo - row["value"]) if row["value"] < lo else (row["value"] - hi)
            records.append(
                {
                    "ts": row["ts"],
                    "device_id": row["device_id"],
                    "kind": "out-of-range",
                    "score": float(min(1.0, 0.5 + excess / span)),
                    "severity": "warning",
                    "model": _MODEL,
                    "message": f"{row['metric']} = {row['value']:g} outside [{lo:g}, {hi:g}]",
                    "detail": {
                        "metric": row["metric"],
                        "value": row["value"],
                        "low": lo,
                        "high": hi,
                    },
                }
            )
        return Events.from_records(records)

    def _seen(self, batch: Batch, now: int) -> None:
        """Note each series' newest live reading (see the class docstring)."""
        cutoff = now - (self.stale_after_us or 0)
        live = batch.filter(batch.ts_us >= cutoff) if len(batch) else batch
        if not len(live):
            return
        latest = live.table.group_by(["device_id", "metric"]).aggregate([("ts", "max")])
        for device, metric, t in zip(
            latest.column("device_id").to_pylist(),
            latest.column("metric").to_pylist(),
            latest.column("ts_max").cast(pa.int64()).to_pylist(),
            strict=True,
        ):
            if t > self._last_seen.get((device, metric), -1):
                self._last_seen[(device, metric)] = t
                self._stale.discard((device, metric))

    def _staleness(self, now: int) -> Events:
        cutoff = now - (self.stale_after_us or 0)
        newly = sorted(k for k, t in self._last_seen.items() if t < cutoff and k not in self._stale)
        self._stale.update(newly)
        if not newly:
            return Events.empty()
        return Events.from_records(self._stale_event(key, now) for key in newly)

    def _stale_event(self, key: tuple[str, str], now: int) -> dict[str, object]:
        device, metric = key
        last = self._last_seen[key]
        return {
            "ts": datetime.fromtimestamp(now / 1e6, tz=UTC),
            "device_id": device,
            "kind": "stale",
            "score": 1.0,
            "severity": "warning",
            "model": _MODEL,
            "message": f"{metric}: no reading for {(now - last) / 1e6:.0f} s",
            "detail": {"metric": metric, "last_ts_us": last},
        }
