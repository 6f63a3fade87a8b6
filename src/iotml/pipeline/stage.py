"""The stage interface: what the stream pipeline hands every flushed batch to.

A stage is anything with a ``name`` and ``process(batch, now) -> Events``: it sees each
micro-batch after it is stored, vectorised over all its series, and returns the events
(alerts, predictions) it raises. Detectors and models are stages; the built-in
:class:`~iotml.pipeline.rules.RulesStage` is the simplest.

Two optional methods: ``tick(now) -> Events`` is called about every ``tick_s`` seconds
(default 1 s) even when no data arrives — what a stage needs to notice a sensor that has
gone silent — and ``close()`` once after the last flush (to save learned state). Both
run in the pipeline's worker thread, like ``process``.

:class:`Scheduled` is the base of stages that run a model over the store on a schedule
(maintenance scores, forecasts) rather than on each batch.
"""

from __future__ import annotations

__all__ = ["Scheduled", "Stage"]

from typing import Protocol, runtime_checkable

from iotml.types import Batch, Events


@runtime_checkable
class Stage(Protocol):
    """One step that scores stored readings and may raise events."""

    name: str

    def process(self, batch: Batch, now: int) -> Events:
        """Events for ``batch``; ``now`` is the pipeline's clock in epoch microseconds."""
        ...


class Scheduled:
    """A stage that calls :meth:`run` every ``every_us`` microseconds of the pipeline's clock.

    It runs on :meth:`tick` and also on :meth:`process` when a run is due, so a pipeline
    without ticks still runs it; the first call runs at once. Subclasses set ``every_us``
    and implement :meth:`run`.
    """

    every_us: int
    _next_us: int | None = None

    def process(self, batch: Batch, now: int) -> Events:
        """Run when due (the batch itself is already in the store)."""
        return self.tick(now)

    def tick(self, now: int) -> Events:
        """Run if ``every_us`` has passed since the last run."""
        if self._next_us is not None and now < self._next_us:
            return Events.empty()
        self._next_us = now + self.every_us
        return self.run(now)

    def run(self, now: int) -> Events:
        """Run now, whatever the schedule, and return the events."""
        raise NotImplementedError
