"""What the simulated fleet really did: failures, degradations and injected anomalies.

Every record is in the clock of the published timestamps (wall-clock microseconds) and
covers the half-open interval ``[start_us, end_us)``:

* ``degradation`` (kind: the failure mode) — wear grows from ``start`` and the machine
  fails at ``end``; ``end`` may lie after the last reading (the failure the run was heading
  for, which gives the remaining useful life of every reading in the interval).
* ``failure`` (kind: the failure mode) — the machine is stopped from ``start`` until it
  restarts, repaired and healthy, at ``end``.
* ``anomaly`` ``spike`` — exactly one reading, at ``start`` (``end = start + 1``).
* ``anomaly`` ``drift`` — readings in the interval carry an offset growing from zero.
* ``anomaly`` ``stuck`` — readings in the interval repeat the first one's value exactly.
* ``anomaly`` ``gap`` — the device sends nothing in the interval (``metric`` ``*``).
* ``anomaly`` ``malformed`` — the device's message stamped ``start`` was sent broken
  (``metric`` ``*``, ``end = start + 1``); its readings never reach the store.

``metric`` is ``*`` where the whole device is concerned. A record appears once the
fleet has been stepped past its start, and an anomaly only if at least one step fell in
its interval, so every record has a trace in the data. The first line of a truth file is
a ``fleet`` header (seed, speedup, start, counts) that says how to reproduce the run.

>>> truth = GroundTruth()
>>> truth.add(TruthRecord("anomaly", "meter-001", "power", "spike", 1_767_225_600_000_000,
...                       1_767_225_600_000_001))
>>> truth.to_jsonl().decode().splitlines()[0][:60]
'{"type":"anomaly","device_id":"meter-001","metric":"power","'
>>> [r.kind for r in truth.select(type="anomaly")]
['spike']
"""

from __future__ import annotations

__all__ = ["GroundTruth", "TruthRecord", "iso_us", "read_truth"]

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from iotml.errors import InvalidData


def iso_us(ts_us: int) -> str:
    """ISO-8601 UTC text of integer microseconds, e.g. ``2026-01-01T00:00:00.000000Z``.

    >>> iso_us(1_767_225_600_000_001)
    '2026-01-01T00:00:00.000001Z'
    """
    return str(np.datetime64(int(ts_us), "us")) + "Z"


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One thing that happened: ``type`` (degradation, failure, anomaly), where, and when."""

    type: str
    device_id: str
    metric: str
    kind: str
    start_us: int
    end_us: int

    def covers(self, ts_us: int) -> bool:
        """Whether a reading stamped ``ts_us`` lies in ``[start_us, end_us)``."""
        return self.start_us <= ts_us < self.end_us

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready fields, with ISO-8601 times beside the integers."""
        out = asdict(self)
        out["start"] = iso_us(self.start_us)
        out["end"] = iso_us(self.end_us)
        return out


class GroundTruth:
    """The records of one run, in the order they happened, plus the run's header."""

    def __init__(self) -> None:
        self.header: dict[str, Any] = {}
        self._records: list[TruthRecord] = []

    def add(self, record: TruthRecord) -> None:
        """Append ``record``."""
        self._records.append(record)

    def __iter__(self) -> Iterator[TruthRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def select(self, **fields: Any) -> list[TruthRecord]:
        """The records whose fields equal ``fields`` (say ``type="failure"``)."""
        return [r for r in self._records if all(getattr(r, k) == v for k, v in fields.items())]

    def to_jsonl(self) -> bytes:
        """JSON Lines: the header (when the run has started), then the records by start."""
        ordered = sorted(self._records, key=lambda r: (r.start_us, r.device_id, r.metric))
        lines = [orjson.dumps(self.header)] if self.header else []
        lines += [orjson.dumps(r.to_dict()) for r in ordered]
        return b"".join(line + b"\n" for line in lines)

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_jsonl` to ``path`` (parent folders are created) and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_jsonl())
        return path


_FIELDS = ("type", "device_id", "metric", "kind", "start_us", "end_us")


def read_truth(path: str | Path) -> list[TruthRecord]:
    """The records of a truth file (the ``fleet`` header is skipped).

    Raises :class:`~iotml.errors.InvalidData` naming the line that is not a record.
    """
    records = []
    for number, line in enumerate(Path(path).read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if obj.get("type") == "fleet":
                continue
            records.append(TruthRecord(*(obj[k] for k in _FIELDS)))
        except (orjson.JSONDecodeError, AttributeError, KeyError) as err:
            raise InvalidData(
                f"{path}: line {number} is not a truth record with fields {list(_FIELDS)}: {err}"
            ) from err
    return records
