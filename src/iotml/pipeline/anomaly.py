"""The anomaly stage: every stored batch scored by a streaming detector, alerts raised.

:class:`AnomalyStage` feeds each batch to a :class:`~iotml.anomaly.Detector`, turns the
scores into ``anomaly-start`` / ``anomaly-end`` events with an
:class:`~iotml.anomaly.AlertRule`, and — when given a store — keeps what it learned
there: restored when the stage is built (unless ``restore=False``: a run that replays a
fleet from its start, as the demo does, must not inherit another run's baselines), saved
every ``save_every_s`` and when the pipeline closes, so a restart does not forget the
baselines. Metrics in ``ignore``
(actuator commands, setpoints: signals that change on purpose) are not scored. A detector with a
``silent(now_us)`` method (the gap detector) is also asked, on the pipeline's clock tick,
which series have gone quiet, since a dead sensor sends nothing to score.
"""

from __future__ import annotations

__all__ = ["AnomalyStage"]

import io
import logging
import time
from collections.abc import Callable, Collection

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotml.anomaly import AlertRule, Detector, SeriesIndex, rounds
from iotml.errors import ConfigError, InvalidData
from iotml.store import Store
from iotml.types import Batch, Events

log = logging.getLogger("iotml.anomaly")


class AnomalyStage:
    """Score every reading, alert on sustained anomalies, persist the learned state."""

    name = "anomaly"

    def __init__(
        self,
        detector: Detector,
        rule: AlertRule | None = None,
        *,
        store: Store | None = None,
        state_key: str | None = None,
        save_every_s: float = 60.0,
        ignore: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
        restore: bool = True,
    ) -> None:
        self.detector = detector
        self.ignore = pa.array(sorted(ignore), pa.string())
        self.rule = rule or AlertRule(model=f"iotml.anomaly.{detector.name}@1")
        self.store = store
        self.state_key = state_key or f"anomaly/{detector.name}"
        self.save_every_s = save_every_s
        self.clock = clock
        self._saved = clock()
        if store is not None and restore:
            self._restore(store)
        self._share_index()

    def _share_index(self) -> None:
        """When the detector's series share one index and the rule has learned the same
        series, the rule uses that index too: a batch's slots and rounds are found once."""
        index = getattr(self.detector, "index", None)
        if isinstance(index, SeriesIndex) and self.rule.index.keys == index.keys:
            self.rule.index = index

    def process(self, batch: Batch, now: int) -> Events:
        """Score ``batch``, apply the alert rule, save the state when it is due."""
        if len(self.ignore):
            batch = batch.filter(pc.invert(pc.is_in(batch.metric, value_set=self.ignore)))
        index = self.rule.index
        scored = getattr(self.detector, "scored", None)
        if callable(scored) and index is getattr(self.detector, "index", None) and len(batch):
            slots = index.slots(batch.device_id, batch.metric)
            order = rounds(slots, batch.ts_us)
            scores = scored(batch, slots, order)
            events, _ = self.rule.apply(
                batch, scores.score, scores.source, slots=slots, order=order
            )
        else:
            scores = self.detector.update(batch)
            events, _ = self.rule.apply(batch, scores.score, scores.source)
        if self.store is not None and self.clock() - self._saved >= self.save_every_s:
            self.save()
        return events

    def tick(self, now: int) -> Events:
        """Series that have gone silent (when the detector can tell), as alerts."""
        silent = getattr(self.detector, "silent", None)
        if not callable(silent):
            return Events.empty()
        found = silent(now, self.rule.on)
        return self.rule.open(found.keys, now, found.score, "gap", found.gap_s)

    def close(self) -> None:
        """Save the state one last time (the pipeline calls this when it closes)."""
        if self.store is not None:
            self.save()

    def save(self) -> None:
        """Write the detector's and the alert rule's state to the store."""
        assert self.store is not None
        buf = io.BytesIO()
        np.savez(
            buf,
            detector=np.frombuffer(self.detector.state(), np.uint8),
            rule=np.frombuffer(self.rule.state(), np.uint8),
        )
        self.store.save_state(self.state_key, buf.getvalue())
        self._saved = self.clock()

    def _restore(self, store: Store) -> None:
        data = store.load_state(self.state_key)
        if data is None:
            return
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                detector, rule = z["detector"].tobytes(), z["rule"].tobytes()
            self.detector.load_state(detector)
            self.rule.load_state(rule)
        except (OSError, ValueError, KeyError, InvalidData, ConfigError) as err:
            # A state from another version or configuration: start afresh, say so.
            log.warning("ignoring saved anomaly state %r: %s", self.state_key, err)
            return
        log.info("restored anomaly state %r", self.state_key)
