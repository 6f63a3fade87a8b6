"""Detectors by name, for the command line and configuration files.

``default`` is what a user gets without configuration: the detector named by
:data:`DEFAULT`, chosen on development data by ``benchmarks/bench_anomaly_quality.py
choose`` (four benchmarks, none of their scored data; the rule and the figures are in
BENCHMARKS.md). It is ``adaptive``: per series :class:`~iotml.anomaly.adaptive.Adaptive`
(its own daily/weekly seasonality, AR(1)-whitened and Student-t-calibrated residuals,
gated learning that adopts a lasting change), a stuck-sensor rule and a gap rule,
combined so each reading reports the detector most surprised by it. ``classic`` is the
default before it: the same stuck and gap rules around a robust baseline (an exponentially
weighted median and MAD: spikes, outliers and large shifts, but a daily cycle large against
the noise is flagged as itself). Page-Hinkley (``changepoint``) finds smaller shifts sooner
but fires on any slow cycle; ``multivariate`` adds the per-device PCA detector (channels
that stop moving together) to ``adaptive``.

>>> DEFAULT
'adaptive'
>>> make_detector("default", warmup=10).parts
('adaptive', 'stuck', 'gap')
>>> make_detector("classic", warmup=10).parts
('robust', 'stuck', 'gap')
"""

from __future__ import annotations

__all__ = ["DEFAULT", "DETECTORS", "default_detector", "make_detector"]

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

DEFAULT = "adaptive"
"""The detector ``default`` names: the choice of ``bench_anomaly_quality.py choose``."""


def _liveness(warmup: int) -> list[Detector]:
    return [Stuck(warmup=max(warmup, 50)), Gap(warmup=max(warmup // 2, 5))]


def _adaptive(warmup: int) -> Combined:
    return Combined([Adaptive(warmup=warmup), *_liveness(warmup)])


def _classic(warmup: int) -> Combined:
    return Combined([RobustBaseline(warmup=warmup), *_liveness(warmup)])


def _multivariate(warmup: int) -> Combined:
    return Combined([*_adaptive(warmup).detectors, PCADetector(warmup=max(warmup, 30))])


DETECTORS: dict[str, Callable[[int], Detector]] = {
    "adaptive": _adaptive,
    "classic": _classic,
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
"""Name → factory taking the warm-up (readings per series, rows for ``pca``); ``default``
is :data:`DEFAULT`'s factory."""
DETECTORS["default"] = DETECTORS[DEFAULT]


def default_detector(warmup: int = 30) -> Detector:
    """The detector a user gets without configuration (see the module docstring)."""
    return DETECTORS[DEFAULT](warmup)


def make_detector(name: str = "default", *, warmup: int = 30) -> Detector:
    """A new detector called ``name`` (see :data:`DETECTORS`)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"no detector {name!r}; choose one of {sorted(DETECTORS)}") from None
    return factory(warmup)
