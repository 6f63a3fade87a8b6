"""What every codec returns, and the checks they share.

A decoder never raises for a bad *record*: it returns the good readings in a
:class:`Decoded` and each bad record as a :class:`Rejected` with a reason that names the
field and value, so the caller can keep it as a dead letter. Only a payload that cannot be
parsed at all (or breaks a size limit) raises :class:`~iotml.errors.InvalidPayload`.
"""

from __future__ import annotations

__all__ = [
    "TIME_ARRIVAL",
    "TIME_RELATIVE",
    "TIME_SENT",
    "Decoded",
    "Rejected",
    "check_records",
    "check_size",
    "now_us",
    "split_by_time_range",
]

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from iotml.config import Limits
from iotml.errors import PayloadTooLarge
from iotml.types import Batch

TIME_SENT = 0
"""A reading whose time the sender gave as an absolute instant."""
TIME_RELATIVE = 1
"""A reading whose time is relative to the receiver's clock (SenML times below 2**28 s)."""
TIME_ARRIVAL = 2
"""A reading sent without a time: it is stamped with the receiver's clock."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One record (or a whole payload) that was not turned into readings.

    ``payload`` holds the original bytes of the record where they can be recovered (the
    whole payload otherwise); ``index`` is the record's position in the payload (the row
    number for files, 1-based counting the header as row 1), ``None`` for a whole payload.
    ``payload_index`` is the payload's position in the sequence given to a decoder of many
    payloads (``decode_many``, ``decode_senml_json_many``), ``None`` after a single decode.

    ``size`` and ``sha256`` describe the original when ``payload`` holds only its first
    bytes: its length and the hex SHA-256 of all of it, or, when ``sha256`` is ``None``, a
    lower bound of its length (a body refused before it was read whole). Both ``None``:
    ``payload`` is the whole original. Dead letters keep both (see
    :data:`~iotml.store.DEAD_LETTER_SCHEMA`).
    """

    reason: str
    payload: bytes
    index: int | None = None
    payload_index: int | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """The result of decoding one payload or file.

    ``units`` maps ``(device_id, metric)`` to the unit the payload declared;
    ``notes`` records choices the decoder made that a user should be able to see
    (for instance which timestamp format it detected).

    Two optional columns, one entry per reading, say where each reading came from:
    ``payload_index`` is its payload's position among payloads decoded together (as
    :attr:`Rejected.payload_index`; ``None``: every reading is from one payload, or it
    is not known), and ``time_kind`` how its time was given — :data:`TIME_SENT`,
    :data:`TIME_RELATIVE` or :data:`TIME_ARRIVAL` (``None``: every time was sent). They
    let a caller move the receiver-clock times of each payload to when that payload was
    received, and keep arrival times apart (see ``docs/formats.md``). Equality ignores them.
    """

    batch: Batch
    rejected: list[Rejected] = field(default_factory=list)
    units: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    payload_index: npt.NDArray[np.int64] | None = field(default=None, compare=False, repr=False)
    time_kind: npt.NDArray[np.int8] | None = field(default=None, compare=False, repr=False)

    def payloads(self) -> npt.NDArray[np.int64]:
        """``payload_index`` with ``None`` spelled out (every reading from payload 0)."""
        if self.payload_index is not None:
            return self.payload_index
        return np.zeros(len(self.batch), dtype=np.int64)

    def time_kinds(self) -> npt.NDArray[np.int8]:
        """``time_kind`` with ``None`` spelled out (every time sent)."""
        if self.time_kind is not None:
            return self.time_kind
        return np.full(len(self.batch), TIME_SENT, dtype=np.int8)


def now_us(clock: Callable[[], float] = time.time) -> int:
    """The receiver's clock as integer microseconds since the epoch."""
    return round(clock() * 1_000_000)


def check_size(data: bytes, limits: Limits, what: str) -> None:
    """Raise :class:`PayloadTooLarge` when ``data`` exceeds ``limits.max_bytes``."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"{what} payload is {len(data)} bytes, over the limit of {limits.max_bytes} "
            "(raise IOTML_MAX_PAYLOAD_BYTES or Limits.max_bytes to accept it)"
        )


def check_records(count: int, limits: Limits, what: str) -> None:
    """Raise :class:`PayloadTooLarge` when a payload holds more than ``max_records``."""
    if count > limits.max_records:
        raise PayloadTooLarge(
            f"{what} payload holds {count} records, over the limit of {limits.max_records} "
            "(raise IOTML_MAX_RECORDS or Limits.max_records to accept it)"
        )


def _iso(ts_us: int) -> str:
    try:
        return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{ts_us / 1e6:.0f} s since the epoch"


def split_by_time_range(
    ts_us: npt.NDArray[np.int64], limits: Limits, now: int
) -> tuple[npt.NDArray[np.bool_], list[tuple[int, str]]]:
    """Check timestamps against ``[limits.min_ts_us, now + limits.max_future_s]``.

    Returns the mask of acceptable rows and ``(row, reason)`` for each rejected row.

    >>> ok, bad = split_by_time_range(np.array([0, 10**18]), Limits(), now=0)
    >>> ok.tolist(), bad[0][0]
    ([True, False], 1)
    """
    latest = now + int(limits.max_future_s * 1_000_000)
    ok = (ts_us >= limits.min_ts_us) & (ts_us <= latest)
    reasons: list[tuple[int, str]] = []
    for row in np.flatnonzero(~ok).tolist():
        t = int(ts_us[row])
        if t < limits.min_ts_us:
            reasons.append((row, f"field 'ts': {_iso(t)} is before {_iso(limits.min_ts_us)}"))
        else:
            reasons.append(
                (
                    row,
                    f"field 'ts': {_iso(t)} is more than {limits.max_future_s:g} s ahead of "
                    f"the receiver's clock ({_iso(now)})",
                )
            )
    return ok, reasons
