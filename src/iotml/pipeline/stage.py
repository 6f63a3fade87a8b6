"""The stage interface: what the stream pipeline hands every flushed batch to.

A stage is anything with a ``name`` and ``process(batch, now) -> Events``: it sees each
micro-batch after it is stored, vectorised over all its series, and returns the events
(alerts, predictions) it raises. Detectors and models are stages; the built-in
:class:`~iotml.pipeline.rules.RulesStage` is the simplest.

Two optional methods: ``tick(now) -> Events`` is called about every ``tick_s`` seconds
(default 1 s) even when no data arrives — what a stage needs to notice a sensor that has
gone silent — and ``close()`` once after the last flush (to save learned state). Both
run in the pipeline's worker thread, like ``process``.
"""

from __future__ import annotations

__all__ = ["Stage"]

from typing import Protocol, runtime_checkable

from iotml.types import Batch, Events


@runtime_checkable
class Stage(Protocol):
    """One step that scores stored readings and may raise events."""

    name: str

    def process(self, batch: Batch, now: int) -> Events:
        """Events for ``batch``; ``now`` is the pipeline's clock in epoch microseconds."""
        ...
