"""Which devices may write: every known one (auto-registering new ones) or only registered.

In ``auto`` mode a device seen for the first time is registered (``meta={"auto": true}``);
in ``strict`` mode its readings are refused. A revoked device is refused in both modes.
Refused readings are not lost: each device's refused readings become one
:class:`~iotml.codecs.Rejected` whose payload is their JSON, kept in the dead letters.
"""

from __future__ import annotations

__all__ = ["DeviceGate"]

from collections.abc import Callable
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs import Rejected
from iotml.errors import ConfigError
from iotml.store import Store
from iotml.types import Batch


class DeviceGate:
    """Admits a batch's rows by device, per the registry mode."""

    def __init__(
        self, store: Store, mode: Literal["auto", "strict"], now: Callable[[], int]
    ) -> None:
        if mode not in ("auto", "strict"):
            raise ConfigError(f"registry mode {mode!r} is not one of 'auto', 'strict'")
        self.store = store
        self.mode = mode
        self.now = now
        self._active: set[str] | None = None
        self._revoked: set[str] = set()

    def _load(self) -> set[str]:
        if self._active is None:
            records = self.store.devices()
            self._active = {d.device_id for d in records if d.revoked is None}
            self._revoked = {d.device_id for d in records if d.revoked is not None}
        return self._active

    def forget(self) -> None:
        """Re-read the registry at the next batch (after devices are added or revoked)."""
        self._active = None

    def admit(self, batch: Batch) -> tuple[Batch, list[Rejected]]:
        """The rows that may be stored, and the refused ones as rejections."""
        if not len(batch):
            return batch, []
        active = self._load()
        seen = set(pc.unique(batch.device_id).to_pylist())
        unknown = seen - active - self._revoked
        if unknown and self.mode == "auto":
            for device in sorted(unknown):
                self.store.register_device(device, meta={"auto": True}, now=self.now())
            active |= unknown
            unknown = set()
        refused = (seen & self._revoked) | unknown
        if not refused:
            return batch, []
        mask = pc.is_in(batch.device_id, value_set=pa.array(sorted(refused)))
        kept = batch.filter(pc.invert(mask))
        return kept, [self._rejection(batch.filter(mask), d) for d in sorted(refused)]

    def _rejection(self, refused: Batch, device: str) -> Rejected:
        rows = refused.filter(pc.equal(refused.device_id, device)).rows()
        if device in self._revoked:
            reason = f"device {device!r} is revoked; its readings are refused"
        else:
            reason = (
                f"unknown device {device!r}: the registry is strict and accepts only registered "
                f"devices (register it with: iotml devices add {device})"
            )
        payload = orjson.dumps(
            [{"device_id": d, "metric": m, "ts": t, "value": v} for d, m, t, v in rows]
        )
        return Rejected(reason, payload)
