"""Live network security: flows of a followed Zeek log scored as they come, ``intrusion`` events.

:class:`IntrusionScorer` is handed batches of new flows (from
:class:`~iotml.netsec.zeek.ZeekFollower`, or any reader). It keeps each device's recent
flows — those within twice the model's feature window of the newest flow, and the last
``beacon_flows`` of every conversation, whose rhythm reads further back — so the features
of a new flow are computed with its history exactly as :func:`~iotml.netsec.features.flow_features`
computes them over the whole log (flows arriving in time order), never with a flow
after it. The model scores the new flows; a flow is *flagged* when its p-value is below the
model's ``alpha``.

A model that has not learnt the site yet (not :meth:`~iotml.netsec.model.NetsecModel.adapt`-ed
to it) starts with a warm-up: the first ``warmup_s`` of flow time is taken as this
network's normal traffic — kept, never flagged — and the model is then adapted to it, per
device and per service, before any flow is scored for alerts.

A device (the originating host) raises an ``intrusion`` event when a flagged flow is its
``min_flows``-th flagged flow within the feature window — one unusual flow in a thousand
is what ``alpha`` allows on normal traffic, several close together are not — and at most
once per ``cooldown_s`` seconds of flow time: the flows flagged in between are counted
into the next event instead of raising their own, so a DDoS burst of 10 000 flows is one
event per cooldown, not 10 000. An event says

* ``score`` — ``1 - p`` of its most unusual flow (calibrated: comparable across models);
  ``severity`` ``critical`` when that p-value is at most ``critical_p``, else ``warning``;
* ``message`` — the device, how many flows were flagged since when, the most unusual
  flow's destination and the features that deviate most (``dev_new_ports 0.61, ...``);
* ``detail`` — ``flows_flagged``, ``since``/``until``, the most unusual flow (``uid``,
  ``resp_h``, ``resp_p``, ``proto``, ``p_value``, ``features`` with their shares), some
  ``uids``, the busiest destinations and the number of distinct hosts and ports.

:func:`watch_zeek` follows a log and stores each batch's events, then hands them to the
``on_events`` callbacks (:class:`~iotml.transport.alerts.MqttAlerts` publishes them on the
alert topic), as the stream pipeline does for readings.
"""

# ruff: noqa: N803, N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

__all__ = ["INTRUSION", "IntrusionScorer", "WatchCounters", "watch_zeek"]

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import ConfigError
from iotml.netsec.flows import FLOW_SCHEMA, BadLine, Flows
from iotml.netsec.model import MODEL_FEATURES, NetsecModel, explanation_text
from iotml.netsec.zeek import ZeekFollower
from iotml.store import Store
from iotml.types import Events

INTRUSION = "intrusion"
"""The kind of the events raised."""

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_UIDS = 10  # flow uids an event lists
_TOP_DESTINATIONS = 5


@dataclass
class _Suspects:
    """A device's flagged flows not yet reported: counts, span and the most unusual one."""

    count: int = 0
    ready: int = 0  # of them, flows that had the evidence to raise an event
    since: float = float("inf")
    until: float = float("-inf")
    worst: dict[str, Any] = field(default_factory=dict)
    uids: list[str] = field(default_factory=list)
    hosts: Counter[str] = field(default_factory=Counter)
    ports: Counter[int] = field(default_factory=Counter)


class IntrusionScorer:
    """Score batches of new flows with their history; raise throttled ``intrusion`` events.

    Parameters
    ----------
    model
        A trained :class:`~iotml.netsec.model.NetsecModel`.
    cooldown_s
        Flow-time seconds between two events of one device.
    min_flows
        Flagged flows of a device within the feature window that raise an event (1: every
        flagged flow may).
    critical_p
        Events whose most unusual flow has a p-value at most this are ``critical``
        (default: the model's ``alpha`` / 10).
    max_device_flows
        History kept per device at most (the newest), bounding memory under a flood.
    max_warmup_flows
        A model not adapted to the site learns it from the first ``warmup_s`` of flow time
        (see :meth:`process`), or from this many flows if they come sooner.
    """

    name = "netsec"

    def __init__(
        self,
        model: NetsecModel,
        *,
        cooldown_s: float = 300.0,
        min_flows: int = 3,
        critical_p: float | None = None,
        max_device_flows: int = 50_000,
        max_warmup_flows: int = 1_000_000,
    ) -> None:
        if model.detector_ is None:
            raise ConfigError("the netsec model is not trained: fit() or load() it first")
        if not cooldown_s >= 0 or min_flows < 1 or max_device_flows < model.beacon_flows + 1:
            raise ConfigError(
                f"cooldown_s={cooldown_s!r}, min_flows={min_flows!r}, max_device_flows="
                f"{max_device_flows!r}; expected >= 0, >= 1, > beacon_flows"
            )
        self.model = model
        self.cooldown_s = float(cooldown_s)
        self.min_flows = int(min_flows)
        self.critical_p = model.alpha / 10 if critical_p is None else float(critical_p)
        self.max_device_flows = int(max_device_flows)
        self.history = FLOW_SCHEMA.empty_table()
        self._flagged = np.zeros(0, dtype=bool)  # per history row
        self._newest = float("-inf")
        self._last_event: dict[str, float] = {}
        self._suspects: dict[str, _Suspects] = {}
        self.last_scores = pa.table({"uid": pa.array([], pa.string())})
        self.max_warmup_flows = int(max_warmup_flows)
        self._warm: list[pa.Table] = []
        self._warm_flows = 0
        self._warm_start: float | None = None

    @property
    def warming_up(self) -> bool:
        """Whether the scorer is still learning the site (its model is not adapted yet)."""
        return self.model.site_ is None

    def process(self, flows: Flows | pa.Table) -> Events:
        """Score new flows (with their history) and return the events they raise.

        With a model not yet adapted to this site, the first ``warmup_s`` of flow time is
        the site's warm-up: those flows are kept, never flagged, and when a flow past it
        arrives the model is adapted to them (:meth:`~iotml.netsec.model.NetsecModel.adapt`,
        on a copy) before that flow and the next are scored.
        """
        table = flows.table if isinstance(flows, Flows) else flows
        table = table.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA)
        if not table.num_rows:
            return Events.empty()
        if self.warming_up:
            table = self._warm_up(table)
            if not table.num_rows:
                return Events.empty()
        combined = pa.concat_tables([self.history, table]).combine_chunks()
        X = self.model.matrix(combined)[-table.num_rows :]
        raw, p, flagged = self.model.scores(X)
        self.last_scores = pa.table({"uid": table.column("uid"), "orig_h": table.column("orig_h"),
                                     "score": raw, "p_value": p, "flagged": flagged})  # fmt: skip
        ts = table.column("ts").to_numpy()
        records = self._events(table, X, ts, raw, p, flagged)
        self._remember(combined, np.r_[self._flagged, flagged])
        return Events.from_records(records) if records else Events.empty()

    def _warm_up(self, table: pa.Table) -> pa.Table:
        """Keep warm-up flows; adapt the model once the warm-up is over; the flows after it."""
        ts = table.column("ts").to_numpy()
        if self._warm_start is None:
            self._warm_start = float(np.nanmin(ts))
        later = ts >= self._warm_start + self.model.warmup_s
        warm = table.filter(pa.array(~later))
        self._warm.append(warm)
        self._warm_flows += warm.num_rows
        self.last_scores = pa.table({"uid": warm.column("uid"), "orig_h": warm.column("orig_h"),
                                     "score": np.full(warm.num_rows, np.nan),
                                     "p_value": np.ones(warm.num_rows),
                                     "flagged": np.zeros(warm.num_rows, dtype=bool)})  # fmt: skip
        if warm.num_rows:
            combined = pa.concat_tables([self.history, warm]).combine_chunks()
            self._remember(combined, np.r_[self._flagged, np.zeros(warm.num_rows, dtype=bool)])
        if not later.any() and self._warm_flows < self.max_warmup_flows:
            return table.slice(0, 0)
        self.model = self.model.adapted(pa.concat_tables(self._warm).combine_chunks())
        self._warm = []
        return table.filter(pa.array(later)) if later.any() else table.slice(0, 0)

    # -- events -------------------------------------------------------------------------

    def _events(
        self, table: pa.Table, X: Array, ts: Array, raw: Array, p: Array, flagged: Any
    ) -> list[dict[str, Any]]:
        rows = np.flatnonzero(flagged)
        newest = max(self._newest, float(np.nanmax(ts)))
        devices = np.asarray(pc.fill_null(table.column("orig_h"), "?").to_pylist(), dtype=object)
        evidence = self._evidence(devices, ts, rows)
        waiting = {d for d, s in self._suspects.items() if s.ready}
        records = []
        for device in sorted(set(devices[rows]) | waiting):
            mine = rows[devices[rows] == device]
            mine = mine[np.argsort(ts[mine], kind="stable")]
            ready = evidence[np.searchsorted(rows, mine)] >= self.min_flows
            for part, fire in self._segments(device, ts[mine], ready, newest):
                suspects = self._suspects.setdefault(device, _Suspects())
                self._add(suspects, table, X, mine[part], int(ready[part].sum()), ts, raw, p)
                if fire is not None:
                    records.append(self._event(device, fire, suspects))
                    del self._suspects[device]
                    self._last_event[device] = fire
        stale = [d for d, s in self._suspects.items()
                 if not s.ready and s.until < newest - self.model.window]  # fmt: skip
        for device in stale:  # isolated flagged flows: what alpha allows, not evidence
            del self._suspects[device]
        return sorted(records, key=lambda r: float(r["ts"].timestamp()))

    def _evidence(self, devices: npt.NDArray[np.object_], ts: Array, rows: IntArray) -> IntArray:
        """For each flagged new flow, its device's flagged flows in the window up to it."""
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        old = np.asarray(pc.fill_null(self.history.column("orig_h"), "?").to_pylist(), dtype=object)
        old_ts = self.history.column("ts").to_numpy()
        out = np.zeros(len(rows), dtype=np.int64)
        for device in set(devices[rows]):
            mine = devices[rows] == device
            times = np.sort(np.r_[old_ts[self._flagged & (old == device)], ts[rows[mine]]])
            t = ts[rows[mine]]
            lo = np.searchsorted(times, t - self.model.window, side="left")
            out[mine] = np.searchsorted(times, t, side="right") - lo
        return out

    def _segments(
        self, device: str, t: Array, ready: npt.NDArray[np.bool_], newest: float
    ) -> list[tuple[slice, float | None]]:
        """Split a device's new flagged flows (sorted by time) into runs ending in an event.

        The next event fires at the first ready flow at least ``cooldown_s`` after the
        device's previous event — or, when ready flows already wait (they came within the
        cooldown), as soon as the cooldown is over and the log has reached that time. The
        flows before an event join it; the flows after the last one join the last event
        (they are known now); without an event they all wait for the next one.
        """
        waiting = device in self._suspects and self._suspects[device].ready > 0
        due = self._last_event.get(device, float("-inf")) + self.cooldown_s
        fire: list[float] = []
        if waiting:
            if newest < due:
                return [(slice(0, len(t)), None)]
            fire.append(due)
            due += self.cooldown_s
        when, at = t[ready], np.flatnonzero(ready)
        cuts: list[int] = []  # where each flow-triggered event's run starts, in ``t``
        i = 0
        while (i := max(i, int(np.searchsorted(when, due, side="left")))) < len(when):
            fire.append(float(when[i]))
            cuts.append(int(at[i]))
            due, i = when[i] + self.cooldown_s, i + 1
        if not fire:
            return [(slice(0, len(t)), None)]
        carried = len(fire) - len(cuts)  # 1 when waiting flows fire first, at ``due``
        starts = [0, *cuts[1 - carried :]]
        ends = [*starts[1:], len(t)]
        return [(slice(a, b), f) for a, b, f in zip(starts, ends, fire, strict=True)]

    def _add(
        self, s: _Suspects, table: pa.Table, X: Array, rows: IntArray, ready: int, ts: Array,
        raw: Array, p: Array,
    ) -> None:  # fmt: skip
        if not len(rows):
            return
        s.count += len(rows)
        s.ready += ready
        s.since, s.until = min(s.since, float(ts[rows].min())), max(s.until, float(ts[rows].max()))
        rank = np.lexsort((-raw[rows], p[rows]))  # lowest p first, then highest score
        resp_h = table.column("resp_h").take(pa.array(rows)).to_pylist()
        resp_p = table.column("resp_p").take(pa.array(rows)).to_pylist()
        s.hosts.update(h or "?" for h in resp_h)
        s.ports.update(int(x) for x in resp_p if x is not None)
        uids = table.column("uid").take(pa.array(rows[rank[:_UIDS]])).to_pylist()
        s.uids = (s.uids + [u for u in uids if u])[:_UIDS]
        best = int(rows[rank[0]])
        if not s.worst or (p[best], -raw[best]) < (s.worst["p_value"], -s.worst["score"]):
            s.worst = self._describe(table, X, best, raw, p)

    def _describe(
        self, table: pa.Table, X: Array, row: int, raw: Array, p: Array
    ) -> dict[str, Any]:
        detector = self.model.detector_
        assert detector is not None
        explained = detector.explain(X[row : row + 1], top=3)[0]
        flow = {k: table.column(k)[row].as_py() for k in ("uid", "resp_h", "resp_p", "proto")}
        features = [{"name": MODEL_FEATURES[j], "share": round(share, 4), "value": float(X[row, j])}
                    for j, share in explained]  # fmt: skip
        return {**flow, "p_value": float(p[row]), "score": float(raw[row]),
                "features": features, "explanation": explanation_text(explained)}  # fmt: skip

    def _event(self, device: str, at: float, s: _Suspects) -> dict[str, Any]:
        w = s.worst
        since = _iso(s.since)
        where = f"{w['resp_h']}:{w['resp_p'] if w['resp_p'] is not None else '-'}/{w['proto']}"
        message = (
            f"{device}: {s.count} suspicious flow{'s' if s.count != 1 else ''} since {since}, "
            f"most unusual to {where} (p={w['p_value']:.2g}): {w['explanation']}"
        )
        detail = {
            "flows_flagged": s.count, "since": since, "until": _iso(s.until),
            **{k: w[k] for k in ("uid", "resp_h", "resp_p", "proto", "p_value", "features")},
            "uids": s.uids, "distinct_hosts": len(s.hosts), "distinct_ports": len(s.ports),
            "destinations": [[h, n] for h, n in s.hosts.most_common(_TOP_DESTINATIONS)],
            "ports": [[port, n] for port, n in s.ports.most_common(_TOP_DESTINATIONS)],
        }  # fmt: skip
        return {
            "ts": datetime.fromtimestamp(at, tz=UTC), "device_id": device, "kind": INTRUSION,
            "score": 1.0 - w["p_value"],
            "severity": "critical" if w["p_value"] <= self.critical_p else "warning",
            "model": self.model.ref, "message": message, "detail": detail,
        }  # fmt: skip

    # -- history ------------------------------------------------------------------------

    def _remember(self, combined: pa.Table, flagged: npt.NDArray[np.bool_]) -> None:
        """Keep what later flows' features read: see the module docstring."""
        ts = combined.column("ts").to_numpy()
        self._newest = max(self._newest, float(np.nanmax(ts)))
        keep = ts >= self._newest - 2 * self.model.window
        conversation = _codes(combined, ["orig_h", "resp_h", "resp_p", "proto"])
        keep |= _rank_newest(conversation, ts) < self.model.beacon_flows
        keep &= _rank_newest(_codes(combined, ["orig_h"]), ts) < self.max_device_flows
        self.history = combined.filter(pa.array(keep))
        self._flagged = flagged[keep]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _codes(table: pa.Table, keys: Sequence[str]) -> IntArray:
    """An integer per distinct combination of ``keys`` (nulls are a value of their own)."""
    parts = []
    for key in keys:
        encoded = pc.dictionary_encode(table.column(key)).combine_chunks()
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        parts.append(np.nan_to_num(indices.astype(np.float64), nan=-1.0))
    _, codes = np.unique(np.column_stack(parts), axis=0, return_inverse=True)
    out: IntArray = codes.ravel().astype(np.int64)
    return out


def _rank_newest(group: IntArray, ts: Array) -> IntArray:
    """0 for each group's newest row, 1 for the one before, ..."""
    order = np.lexsort((-ts, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, sizes)
    return rank


# ----------------------------------------------------------------------------- watching


@dataclass(slots=True)
class WatchCounters:
    """What :func:`watch_zeek` did."""

    batches: int = 0
    flows: int = 0
    flagged: int = 0
    events: int = 0
    bad_lines: int = 0


async def watch_zeek(
    path: str | Path,
    scorer: IntrusionScorer,
    store: Store,
    *,
    on_events: Iterable[Callable[[Events], object]] = (),
    on_bad: Callable[[list[BadLine]], object] | None = None,
    stop: asyncio.Event | None = None,
    poll_s: float = 1.0,
    once: bool = False,
    max_seconds: float | None = None,
    from_end: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> WatchCounters:
    """Follow a Zeek log, score every new batch, store and hand on the events.

    Runs until ``stop`` is set, ``max_seconds`` have passed on ``clock``, or — with
    ``once`` — the log has nothing new. Bad lines go to ``on_bad`` and are counted; they
    never stop the watch. ``from_end`` skips what the log already holds.
    """
    counters, callbacks = WatchCounters(), list(on_events)
    stop = stop or asyncio.Event()
    deadline = None if max_seconds is None else clock() + max_seconds
    follower = ZeekFollower(path, from_end=from_end)
    try:
        while not stop.is_set() and (deadline is None or clock() < deadline):
            batch = follower.poll()
            if batch.bad:
                counters.bad_lines += len(batch.bad)
                if on_bad is not None:
                    on_bad(batch.bad)
            if len(batch):
                _score(batch, scorer, store, callbacks, counters)
            elif once:
                break
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)
    finally:
        follower.close()
    return counters


def _score(
    batch: Flows, scorer: IntrusionScorer, store: Store,
    callbacks: list[Callable[[Events], object]], counters: WatchCounters,
) -> None:  # fmt: skip
    events = scorer.process(batch)
    counters.batches += 1
    counters.flows += len(batch)
    counters.flagged += int(pc.sum(scorer.last_scores.column("flagged")).as_py() or 0)
    if len(events):
        store.write_events(events)
        counters.events += len(events)
        for callback in callbacks:
            callback(events)
