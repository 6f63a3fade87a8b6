"""Detectors by name, for the command line and configuration files.

>>> sorted(DETECTORS)[:2]
['default', 'ewma']
>>> make_detector("robust", warmup=10).name
'robust'
"""

from __future__ import annotations

__all__ = ["DETECTORS", "make_detector"]

from collections.abc import Callable

from iotml.anomaly.base import Detector
from iotml.anomaly.combined import Combined
from iotml.anomaly.univariate import EWMA, RobustBaseline
from iotml.errors import ConfigError


def _default(warmup: int) -> Detector:
    return Combined([RobustBaseline(warmup=warmup), EWMA(warmup=warmup)])


DETECTORS: dict[str, Callable[[int], Detector]] = {
    "default": _default,
    "ewma": lambda warmup: EWMA(warmup=warmup),
    "robust": lambda warmup: RobustBaseline(warmup=warmup),
}
"""Name → factory taking the warm-up (readings per series before scores count)."""


def make_detector(name: str = "default", *, warmup: int = 30) -> Detector:
    """A new detector called ``name`` (see :data:`DETECTORS`)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"no detector {name!r}; choose one of {sorted(DETECTORS)}") from None
    return factory(warmup)
