"""How well events caught what the simulation injected: per truth record, the first event.

A failure counts as **warned** when an event for its device came while the machine was
degrading (from onset to the failure), and the lead time is how long before the failure
the first such event came. An injected anomaly counts as **flagged** when an event for
its device — and its metric, where the record names one — falls in the anomaly's span,
extended by ``slack_s`` (an alert for a gap can only come once the gap has lasted a
while; a spike's span is one microsecond). Later issues evaluate their detectors with
the same rules.

>>> from iotml.sim.truth import TruthRecord
>>> failure = TruthRecord("failure", "m-1", "*", "bearing", 50_000_000, 60_000_000)
>>> wear = TruthRecord("degradation", "m-1", "*", "bearing", 10_000_000, 50_000_000)
>>> events = [{"device_id": "m-1", "ts_us": 42_000_000, "metric": "vibration"}]
>>> [hit] = score_truth([wear, failure], events)
>>> hit.caught, hit.lead_s
(True, 8.0)
"""

from __future__ import annotations

__all__ = ["TruthHit", "event_rows", "score_truth"]

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from iotml.sim.truth import TruthRecord
from iotml.types import Events


@dataclass(frozen=True, slots=True)
class TruthHit:
    """One truth record and the first event that caught it (``None`` when none did)."""

    record: TruthRecord
    first_us: int | None
    lead_s: float | None  # failures only: seconds of warning before the failure

    @property
    def caught(self) -> bool:
        return self.first_us is not None


def event_rows(events: Events) -> list[dict[str, Any]]:
    """Events as ``{device_id, ts_us, metric}`` rows (``metric`` from ``detail``, or ``*``)."""
    table = events.table
    stamps = table.column("ts").cast("int64").to_pylist()
    details = table.column("detail").to_pylist()
    devices = table.column("device_id").to_pylist()
    return [
        {"device_id": d, "ts_us": ts, "metric": orjson.loads(detail).get("metric", "*")}
        for d, ts, detail in zip(devices, stamps, details, strict=True)
    ]


def _first(
    events: Iterable[Mapping[str, Any]], device: str, metric: str, lo: int, hi: int
) -> int | None:
    hits = [
        int(e["ts_us"])
        for e in events
        if e["device_id"] == device
        and lo <= e["ts_us"] < hi
        and (metric == "*" or e.get("metric", "*") in (metric, "*"))
    ]
    return min(hits, default=None)


def score_truth(
    truth: Sequence[TruthRecord], events: Sequence[Mapping[str, Any]], *, slack_s: float = 5.0
) -> list[TruthHit]:
    """For each failure and anomaly in ``truth`` (in order), the first event that caught it."""
    slack = int(slack_s * 1e6)
    onsets = {(r.device_id, r.end_us): r.start_us for r in truth if r.type == "degradation"}
    hits = []
    for record in truth:
        if record.type == "failure":
            onset = onsets.get((record.device_id, record.start_us), record.start_us)
            first = _first(events, record.device_id, "*", onset, record.start_us)
            lead = None if first is None else (record.start_us - first) / 1e6
            hits.append(TruthHit(record, first, lead))
        elif record.type == "anomaly":
            end = record.end_us + slack
            first = _first(events, record.device_id, record.metric, record.start_us, end)
            hits.append(TruthHit(record, first, None))
    return hits
