"""The behaviour stage: each meter's finished days assigned to usage clusters, changes flagged.

:class:`BehaviourStage` runs a :class:`~iotml.clustering.model.ClusterModel` of kind
``"profiles"`` every ``every_s`` seconds of the pipeline's clock (on
:meth:`~BehaviourStage.tick`, and on :meth:`~BehaviourStage.process` when a run is due).
For every device reporting :attr:`~BehaviourStage.metric`, a run reads the hourly means
of the days completed since the device's cursor (the first time: the last
``lookback_days``), builds their :func:`~iotml.clustering.profiles.daily_profiles`,
assigns each day to a cluster and feeds the assignments, in day order, to a
:class:`~iotml.clustering.change.BehaviourChange`.

* **Days are UTC calendar days**, and a day is taken only once it is over and
  ``grace_s`` more has passed (readings delivered late still count); today's partial day
  is never assigned. Each finished day is looked at once: assigned, or skipped.
* **Events are few**: only ``behaviour_change`` events, when a device's cluster has moved
  and stayed moved for ``persist`` days. Their ``detail`` adds ``metric`` and the words
  of both clusters (``from_description``, ``to_description``).
* **The latest assignment per device** is kept, with the cursors and the change
  detector's state, in the store's state blob ``behaviour/<metric>``; saved after every
  run that looked at a day and on :meth:`~BehaviourStage.close`, restored when the stage
  is built (not when the model changed: another model numbers its clusters differently).
  :meth:`BehaviourStage.assignments` and :func:`latest_assignments` read it.
* **Bad data is never fatal**: a day with too many missing hours, a device without
  readings, non-finite means — each such day is skipped and counted per device
  (:attr:`BehaviourStage.skipped`), the first one logged.

>>> import numpy as np
>>> from iotml.clustering.model import ClusterModel
>>> from iotml.clustering.profiles import daily_profiles
>>> from iotml.store import MemoryStore
>>> from iotml.types import Batch
>>> t = np.arange("2026-01-01T00", "2026-01-21T00", dtype="datetime64[h]")
>>> hour, day = t.astype(np.int64) % 24, np.arange(t.size) // 24
>>> noise = np.random.default_rng(0).normal(0.0, 0.2, t.size)
>>> morning, evening = np.where(hour == 7, 4.0, 1.0), np.where(hour == 19, 4.0, 1.0)
>>> training = daily_profiles(t, np.where(day % 2 == 0, morning, evening) + noise)
>>> model = ClusterModel(include=("peak_hour",), k=2, seeds=3).fit(training)
>>> store = MemoryStore()
>>> ts = t.astype("datetime64[us]").astype(np.int64)
>>> power = np.where(day < 12, morning, evening) + noise  # evenings from day 12 on
>>> _ = store.write(Batch.from_arrays(["house-1"] * t.size, ["power"] * t.size, ts, power))
>>> stage = BehaviourStage(model, store, persist=3, lookback_days=30)
>>> (event,) = stage.run(int(ts[-1]) + 2 * 3_600_000_000).to_pylist()
>>> event["ts"].date(), event["detail"]["to_description"].endswith("evening peak")
(datetime.date(2026, 1, 15), True)
>>> stage.assignments().column("day").to_pylist()
[datetime.date(2026, 1, 20)]
"""

from __future__ import annotations

__all__ = ["BEHAVIOUR_KIND", "BehaviourStage", "latest_assignments", "load_behaviour_stage"]

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from iotml.clustering.change import KIND, BehaviourChange
from iotml.clustering.model import ClusterModel
from iotml.clustering.profiles import daily_profiles
from iotml.errors import ConfigError, InvalidData
from iotml.pipeline.stage import Scheduled
from iotml.registry import ModelRegistry
from iotml.store import Store
from iotml.types import Events

log = logging.getLogger("iotml.behaviour")

BEHAVIOUR_KIND = KIND
"""The kind of the events the stage emits: ``behaviour_change``."""

_DAY_US = 86_400_000_000
_HOUR = timedelta(hours=1)
_ASSIGNMENTS = pa.schema(
    [
        pa.field("device_id", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("cluster", pa.int64()),
        pa.field("description", pa.string()),
        pa.field("distance", pa.float64()),
        pa.field("model", pa.string()),
    ]
)


class BehaviourStage(Scheduled):
    """Assign every meter's finished days to clusters; emit ``behaviour_change`` on a move.

    Parameters
    ----------
    model : ClusterModel
        A fitted model of kind ``"profiles"``.
    store : Store
        Where the readings are, and where the stage keeps its state.
    metric : str
        The metric whose daily shape is clustered.
    every_s : float
        Seconds of pipeline clock between runs.
    persist : int
        Days in a row in one new cluster before a move counts.
    lookback_days : int
        Finished days a device's first run looks at.
    grace_s : float
        Seconds after midnight (UTC) before the day that ended is assigned.
    devices : iterable of str, optional
        The meters to follow; default: every device reporting ``metric``, found anew on
        each run.
    """

    name = "behaviour"

    def __init__(
        self,
        model: ClusterModel,
        store: Store,
        *,
        metric: str = "power",
        every_s: float = 3600.0,
        persist: int = 3,
        lookback_days: int = 7,
        grace_s: float = 3600.0,
        devices: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(every_s, int | float) or not every_s > 0:
            raise ConfigError(f"every_s={every_s!r} must be a positive number of seconds")
        if not isinstance(lookback_days, int) or lookback_days < 1:
            raise ConfigError(f"lookback_days={lookback_days!r}; expected a whole number >= 1")
        if not isinstance(grace_s, int | float) or not 0 <= grace_s < 86_400:
            raise ConfigError(f"grace_s={grace_s!r}; expected seconds in [0, 86400)")
        if model.kind != "profiles":
            raise ConfigError(
                f"cluster model {model.ref} groups {model.kind}; the behaviour stage needs "
                "a 'profiles' model (days of a meter)"
            )
        self.words = model.fitted().describe()
        self.model, self.store, self.metric = model, store, metric
        self.every_us = int(every_s * 1e6)
        self.lookback_days, self.grace_us = lookback_days, int(grace_s * 1e6)
        self.devices = None if devices is None else sorted(set(devices))
        self.change = BehaviourChange(persist, model=model.ref)
        self.state_key = f"behaviour/{metric}"
        self.skipped: Counter[str] = Counter()
        """Finished days each device had no usable profile for."""
        self._cursor: dict[str, int] = {}  # device -> start of its first day not looked at
        self._latest: dict[str, dict[str, Any]] = {}
        self._restore()

    # -- the Stage protocol -------------------------------------------------------------

    def close(self) -> None:
        """Save the cursors, the latest assignments and the change detector's state."""
        self._save()

    # -- assigning ----------------------------------------------------------------------

    def run(self, now: int) -> Events:
        """Assign every day finished by ``now`` and not looked at yet; return the events."""
        ready = (now - self.grace_us) // _DAY_US * _DAY_US
        first = self._first_readings()
        events: list[Events] = []
        looked = False
        for device in self.devices if self.devices is not None else sorted(first):
            start = self._cursor.get(device, ready - self.lookback_days * _DAY_US)
            if device in first:
                start = max(start, first[device] // _DAY_US * _DAY_US)
            if start >= ready:
                continue
            events.append(self._assign(device, start, ready))
            self._cursor[device], looked = ready, True
        if looked:
            self._save()
        return Events.concat(events) if events else Events.empty()

    def _first_readings(self) -> dict[str, int]:
        """The time of the first reading of :attr:`metric`, per device reporting it."""
        series = self.store.series()
        ids, metrics = series.column("device_id").to_pylist(), series.column("metric").to_pylist()
        firsts = series.column("first").cast(pa.int64()).to_pylist()
        return {d: t for d, m, t in zip(ids, metrics, firsts, strict=True) if m == self.metric}

    def _assign(self, device: str, start: int, end: int) -> Events:
        """Assign ``device``'s days in ``[start, end)``; count and log the ones left out."""
        days = (end - start) // _DAY_US
        table = self.store.aggregate(device, self.metric, _HOUR, start, end)
        if not table.num_rows:
            self._skip(device, days, f"no {self.metric!r} readings in {days} finished day(s)")
            return Events.empty()
        stamps = table.column("bucket").cast(pa.int64()).to_numpy().astype("datetime64[us]")
        try:
            profiles = daily_profiles(
                stamps, table.column("mean").to_numpy(), max_missing=self.model.max_missing
            )
        except InvalidData as err:
            self._skip(device, days, str(err))
            return Events.empty()
        left_out = days - len(profiles.days)
        if left_out:
            why = profiles.skipped[0] if profiles.skipped else None
            reason = f"{why.day}: {why.reason}" if why else "no readings on some days"
            self._skip(device, left_out, f"{left_out} of {days} finished day(s), e.g. {reason}")
        if not len(profiles.days):
            return Events.empty()
        assigned = self.model.assign(profiles)
        day_us = profiles.days.astype("datetime64[us]").astype(np.int64)
        clusters = assigned.column("cluster").to_numpy()
        self._latest[device] = assigned.slice(len(assigned) - 1).to_pylist()[0]
        return self._described(self.change.update([device] * len(day_us), day_us, clusters))

    def _skip(self, device: str, days: int, reason: str) -> None:
        if not self.skipped[device]:
            log.warning("%s: day(s) left out of behaviour clustering (counted from now on): %s",
                        device, reason)  # fmt: skip
        self.skipped[device] += days

    def _described(self, events: Events) -> Events:
        """Add the metric and both clusters' words to the change events."""
        if not len(events):
            return events
        records = events.to_pylist()
        for r in records:
            was, now = self.words[r["detail"]["from"]], self.words[r["detail"]["to"]]
            r["detail"] |= {"metric": self.metric, "from_description": was, "to_description": now}
            r["message"] += f": was {was!r}, now {now!r}"
        return Events.from_records(records)

    # -- assignments and state ----------------------------------------------------------

    def assignments(self) -> pa.Table:
        """Each device's latest assigned day: ``device_id, day, cluster, description,
        distance, model``, by device."""
        return _table(self._latest, self.model.ref)

    def _save(self) -> None:
        state = {
            "model": self.model.ref,
            "cursors": self._cursor,
            "latest": {d: {**a, "day": a["day"].isoformat()} for d, a in self._latest.items()},
            "change": self.change.state().decode(),
        }
        self.store.save_state(self.state_key, orjson.dumps(state))

    def _restore(self) -> None:
        state = _load(self.store, self.state_key)
        if state is None:
            return
        if state["model"] != self.model.ref:
            log.info("saved behaviour state %r is for model %s; starting afresh with %s",
                     self.state_key, state["model"], self.model.ref)  # fmt: skip
            return
        try:
            self.change.load_state(state["change"].encode())
            self._cursor = {str(d): int(t) for d, t in state["cursors"].items()}
        except (InvalidData, AttributeError, TypeError, ValueError) as err:
            log.warning("ignoring malformed behaviour state %r: %s", self.state_key, err)
            self.change = BehaviourChange(self.change.persist, model=self.model.ref)
            self._cursor = {}
            return
        self._latest = state["latest"]


def _load(store: Store, key: str) -> dict[str, Any] | None:
    """The saved state under ``key`` (latest days as dates), or ``None`` if none or malformed."""
    data = store.load_state(key)
    if data is None:
        return None
    try:
        state = orjson.loads(data)
        latest = {str(d): {**a, "day": np.datetime64(a["day"], "D").item()}
                  for d, a in state["latest"].items()}  # fmt: skip
        state["latest"] = latest
        if not isinstance(state["model"], str):
            raise TypeError("model is not a string")
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as err:
        log.warning("ignoring malformed behaviour state %r: %s", key, err)
        return None
    return dict(state)


def _table(latest: dict[str, dict[str, Any]], ref: str) -> pa.Table:
    rows = [{"device_id": d, **latest[d], "model": ref} for d in sorted(latest)]
    return pa.Table.from_pylist(rows, schema=_ASSIGNMENTS)


def latest_assignments(store: Store, metric: str = "power") -> pa.Table:
    """The latest assigned day of each device, as the behaviour stage on ``metric`` saved it.

    Columns as :meth:`BehaviourStage.assignments`; empty when no stage has run.
    """
    state = _load(store, f"behaviour/{metric}")
    if state is None:
        return _ASSIGNMENTS.empty_table()
    return _table(state["latest"], state["model"])


def load_behaviour_stage(
    spec: str, store: Store, *, home: str | Path | None = None, **options: Any
) -> BehaviourStage:
    """A stage for the cluster model ``NAME[@VERSION]`` of the registry in ``home``.

    ``options`` go to :class:`BehaviourStage` (``every_s``, ``metric``, ``persist``, ...).
    A model of movement tracks is refused with :class:`~iotml.errors.ConfigError`.
    """
    name, _, version = spec.partition("@")
    if not name:
        raise ConfigError(f"cluster model {spec!r} is not NAME or NAME@VERSION")
    model = ClusterModel.load(ModelRegistry(home), name, version or "latest")
    if model.kind != "profiles":
        raise ConfigError(
            f"cluster model {spec!r} ({model.ref}) groups {model.kind}; live behaviour "
            "clustering needs a 'profiles' model (days of a meter): fit one on daily profiles"
        )
    return BehaviourStage(model, store, **options)
