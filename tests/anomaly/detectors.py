"""The detectors the contract suite runs (name, factory). Add yours here."""

from __future__ import annotations

from collections.abc import Callable

from iotml.anomaly import EWMA, Combined, Detector, RobustBaseline

DETECTORS: list[tuple[str, Callable[[], Detector]]] = [
    ("ewma", lambda: EWMA(halflife=50, warmup=20)),
    ("robust", lambda: RobustBaseline(halflife=50, warmup=20)),
    ("combined", lambda: Combined([RobustBaseline(warmup=10), EWMA(warmup=25)])),
]
