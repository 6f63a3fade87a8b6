"""Detectors by name, for the command line and configuration files.

``default`` is what a user gets without configuration: per series, a robust baseline
(spikes, outliers, and level shifts large enough to stand out from the series' spread),
a stuck-sensor rule and a gap rule, combined so each reading reports the detector most
surprised by it. Page-Hinkley (``changepoint``) finds smaller shifts sooner but also
fires on any slow cycle that is large against the noise (a daily temperature swing), so
it is not in the default; ``multivariate`` adds the per-device PCA detector (channels
that stop moving together). ``adaptive`` is the default's stuck and gap rules around
:class:`~iotml.anomaly.adaptive.Adaptive` (its own daily/weekly seasonality, trend,
AR(1)-whitened and Student-t-calibrated residuals) instead of the robust baseline.

>>> sorted(DETECTORS)[:3]
['adaptive', 'changepoint', 'default']
>>> make_detector("default", warmup=10).parts
('robust', 'stuck', 'gap')
"""

from __future__ import annotations

__all__ = ["DETECTORS", "default_detector", "make_detector"]

from collections.abc import Callable

from iotml.anomaly.adaptive import Adaptive
from iotml.anomaly.base import Detector
from iotml.anomaly.changepoint import PageHinkley
from iotml.anomaly.combined import Combined
from iotml.anomaly.liveness import Gap, Stuck
from iotml.anomaly.pca import PCADetector
from iotml.anomaly.quality import RateOfChange
from iotml.anomaly.seasonal import SeasonalBaseline
from iotml.anomaly.univariate import EWMA, RobustBaseline
from iotml.errors import ConfigError


def default_detector(warmup: int = 30) -> Combined:
    """The detector a user gets without configuration (see the module docstring)."""
    return Combined(
        [
            RobustBaseline(warmup=warmup),
            Stuck(warmup=max(warmup, 50)),
            Gap(warmup=max(warmup // 2, 5)),
        ]
    )


def _multivariate(warmup: int) -> Detector:
    parts = default_detector(warmup).detectors
    return Combined([*parts, PCADetector(warmup=max(warmup, 30))])


DETECTORS: dict[str, Callable[[int], Detector]] = {
    "default": default_detector,
    "adaptive": lambda warmup: Combined(
        [Adaptive(warmup=warmup), Stuck(warmup=max(warmup, 50)), Gap(warmup=max(warmup // 2, 5))]
    ),
    "multivariate": _multivariate,
    "robust": lambda warmup: RobustBaseline(warmup=warmup),
    "ewma": lambda warmup: EWMA(warmup=warmup),
    "seasonal": lambda warmup: SeasonalBaseline(warmup=warmup),
    "changepoint": lambda warmup: PageHinkley(warmup=warmup),
    "stuck": lambda warmup: Stuck(warmup=warmup),
    "gap": lambda warmup: Gap(warmup=warmup),
    "rate": lambda warmup: RateOfChange(warmup=warmup),
    "pca": lambda warmup: PCADetector(warmup=max(warmup, 2)),
}
"""Name → factory taking the warm-up (readings per series, rows for ``pca``)."""


def make_detector(name: str = "default", *, warmup: int = 30) -> Detector:
    """A new detector called ``name`` (see :data:`DETECTORS`)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"no detector {name!r}; choose one of {sorted(DETECTORS)}") from None
    return factory(warmup)
