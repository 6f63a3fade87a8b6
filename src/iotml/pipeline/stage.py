"""The stage interface: what the stream pipeline hands every flushed batch to.

A stage is anything with a ``name`` and ``process(batch, now) -> Events``: it sees each
micro-batch after it is stored, vectorised over all its series, and returns the events
(alerts, predictions) it raises. Detectors and models of later releases are stages; the
built-in :class:`~iotml.pipeline.rules.RulesStage` is the first.
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
