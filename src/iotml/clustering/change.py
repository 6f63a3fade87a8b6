"""Behaviour change: a device whose cluster assignment moves, and stays moved.

:class:`BehaviourChange` is fed each device's cluster assignments in time order (a day's
load shape, a track) and emits a ``behaviour_change`` event when a device has been
assigned to one new cluster ``persist`` times in a row. The first assignment of a device
sets its baseline without an event; a single odd day, or a device flickering between
clusters, raises nothing. Assignments that cannot be used (a negative or non-integer
cluster, a time not after the device's last one, so a day fed twice never counts twice)
are rejected and counted, never fatal.

>>> from iotml.types import Events
>>> change = BehaviourChange(persist=2)
>>> days = [d * 86_400_000_000 for d in range(6)]
>>> ev = change.update(["house-1"] * 6, days, [0, 0, 2, 0, 1, 1])
>>> ev.table.column("message").to_pylist()
['house-1: behaviour moved from cluster 0 to cluster 1 (2 assignments in a row)']
>>> change.baseline("house-1")
1
"""

from __future__ import annotations

__all__ = ["KIND", "BehaviourChange"]

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from iotml.errors import ConfigError, InvalidData
from iotml.types import Events

KIND = "behaviour_change"
"""The event kind :class:`BehaviourChange` emits."""


@dataclass
class _Device:
    baseline: int
    last_us: int
    candidate: int = -1
    run: int = 0
    since_us: int = 0


class BehaviourChange:
    """Per device: baseline cluster, and a ``behaviour_change`` event on a persistent move.

    Parameters
    ----------
    persist : int
        Consecutive assignments to the same new cluster needed before the move counts.
    model : str
        ``name@version`` written into the events' ``model`` column.
    """

    def __init__(self, persist: int = 3, model: str = "iotml.clustering.kmeans@1") -> None:
        if persist < 1:
            raise ConfigError(f"persist is {persist!r}; expected at least 1 assignment")
        self.persist = persist
        self.model = model
        self.rejected = 0
        self._devices: dict[str, _Device] = {}

    def baseline(self, device_id: str) -> int | None:
        """The cluster a device is settled in, or ``None`` for a device not seen yet."""
        state = self._devices.get(device_id)
        return None if state is None else state.baseline

    def update(
        self,
        device_ids: Sequence[str],
        ts_us: npt.ArrayLike,
        clusters: npt.ArrayLike,
    ) -> Events:
        """Feed assignments (columns; microseconds since the epoch) and return the events."""
        times = np.asarray(ts_us)
        if np.issubdtype(times.dtype, np.datetime64):
            times = times.astype("datetime64[us]").astype(np.int64)
        labels = np.asarray(clusters)
        if not len(device_ids) == times.size == labels.size:
            raise InvalidData(
                f"{len(device_ids)} device ids, {times.size} times, {labels.size} clusters: "
                "expected one of each per assignment"
            )
        records = [
            rec
            for device, t, c in zip(device_ids, times.tolist(), labels.tolist(), strict=True)
            if (rec := self.observe(str(device), t, c)) is not None
        ]
        return Events.from_records(records) if records else Events.empty()

    def observe(self, device_id: str, ts_us: int, cluster: float) -> dict[str, Any] | None:
        """One assignment; the event record when it completes a persistent move."""
        if isinstance(cluster, float) and cluster.is_integer():
            cluster = int(cluster)  # a float column of whole numbers
        if isinstance(cluster, bool | np.bool_) or not isinstance(cluster, int | np.integer):
            self.rejected += 1
            return None
        if cluster < 0:
            self.rejected += 1
            return None
        state = self._devices.get(device_id)
        if state is None:
            self._devices[device_id] = _Device(int(cluster), int(ts_us))
            return None
        if ts_us <= state.last_us:  # a repeat of an assignment must not count twice
            self.rejected += 1
            return None
        state.last_us = int(ts_us)
        if cluster == state.baseline:
            state.candidate, state.run = -1, 0
            return None
        if cluster != state.candidate:
            state.candidate, state.run, state.since_us = int(cluster), 0, int(ts_us)
        state.run += 1
        if state.run < self.persist:
            return None
        record = self._event(device_id, state)
        state.baseline, state.candidate, state.run = state.candidate, -1, 0
        return record

    def _event(self, device_id: str, state: _Device) -> dict[str, Any]:
        since = datetime.fromtimestamp(state.since_us / 1e6, tz=UTC)
        return {
            "ts": datetime.fromtimestamp(state.last_us / 1e6, tz=UTC),
            "device_id": device_id, "kind": KIND, "score": float(state.run),
            "severity": "info", "model": self.model,
            "message": (
                f"{device_id}: behaviour moved from cluster {state.baseline} to cluster "
                f"{state.candidate} ({state.run} assignments in a row)"
            ),
            "detail": {"from": state.baseline, "to": state.candidate,
                       "since": since.isoformat(), "assignments": state.run},
        }  # fmt: skip

    def state(self) -> bytes:
        """Every device's baseline and pending move, as bytes for a store."""
        return orjson.dumps({d: list(vars(s).values()) for d, s in self._devices.items()})

    def load_state(self, data: bytes) -> None:
        """Restore what :meth:`state` saved."""
        try:
            raw = orjson.loads(data)
            self._devices = {str(d): _Device(*map(int, v)) for d, v in raw.items()}
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as err:
            raise InvalidData(f"behaviour-change state is unreadable: {err}") from err
