"""Streaming anomaly detection: every series scored as it arrives, whole batches at a time."""

from __future__ import annotations

from iotml.anomaly.alerts import AlertRule
from iotml.anomaly.base import (
    SCORE_DECADES,
    Detector,
    Scores,
    SeriesDetector,
    p_to_score,
    z_to_score,
)
from iotml.anomaly.combined import Combined
from iotml.anomaly.univariate import EWMA, RobustBaseline

__all__ = [
    "EWMA",
    "SCORE_DECADES",
    "AlertRule",
    "Combined",
    "Detector",
    "RobustBaseline",
    "Scores",
    "SeriesDetector",
    "p_to_score",
    "z_to_score",
]
