"""The detectors the contract suite runs (name, factory). Add yours here."""

from __future__ import annotations

from collections.abc import Callable

from iotml.anomaly import (
    EWMA,
    Adaptive,
    Combined,
    Detector,
    Gap,
    OutOfRange,
    PageHinkley,
    PCADetector,
    RateOfChange,
    RiverDetector,
    RobustBaseline,
    SeasonalBaseline,
    Stuck,
)


def _river_hst() -> Detector:
    from river import anomaly, preprocessing  # the `river` extra, part of `dev`

    return RiverDetector(
        lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(window_size=50, seed=42),
        model_warmup=50,
        warmup=20,
    )


DETECTORS: list[tuple[str, Callable[[], Detector]]] = [
    ("ewma", lambda: EWMA(halflife=50, warmup=20)),
    ("robust", lambda: RobustBaseline(halflife=50, warmup=20)),
    ("combined", lambda: Combined([RobustBaseline(warmup=10), EWMA(warmup=25)])),
    ("pca", lambda: PCADetector(warmup=30, halflife=100, refit_every=10, align_s=5.0)),
    ("seasonal", lambda: SeasonalBaseline(period_s=120.0, bins=12, min_per_bin=3, warmup=20)),
    ("pagehinkley", lambda: PageHinkley(halflife=50, warmup=20)),
    ("out-of-range", lambda: OutOfRange({"m0": (-20.0, 55.0), "m1": (-20.0, 60.0)})),
    ("stuck", lambda: Stuck(warmup=20)),
    ("gap", lambda: Gap(warmup=20)),
    ("rate", lambda: RateOfChange(warmup=20)),
    ("adaptive", lambda: Adaptive(halflife=50, warmup=20)),
    ("river-hst", _river_hst),
]
