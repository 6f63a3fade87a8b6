"""Streaming anomaly detection: every series scored as it arrives, whole batches at a time."""

from __future__ import annotations

from iotml.anomaly._series import SeriesIndex, rounds
from iotml.anomaly.adaptive import Adaptive
from iotml.anomaly.alerts import AlertRule
from iotml.anomaly.base import (
    SCORE_DECADES,
    Detector,
    Scores,
    SeriesDetector,
    p_to_score,
    z_to_score,
)
from iotml.anomaly.changepoint import PageHinkley
from iotml.anomaly.combined import Combined
from iotml.anomaly.liveness import Gap, Silence, Stuck
from iotml.anomaly.pca import PCAContributions, PCADetector
from iotml.anomaly.quality import OutOfRange, RateOfChange
from iotml.anomaly.registry import DETECTORS, default_detector, make_detector
from iotml.anomaly.river import RiverDetector
from iotml.anomaly.rows import RowScores, classification, score_rows
from iotml.anomaly.seasonal import SeasonalBaseline
from iotml.anomaly.univariate import EWMA, RobustBaseline

__all__ = [
    "DETECTORS",
    "EWMA",
    "SCORE_DECADES",
    "Adaptive",
    "AlertRule",
    "Combined",
    "Detector",
    "Gap",
    "OutOfRange",
    "PCAContributions",
    "PCADetector",
    "PageHinkley",
    "RateOfChange",
    "RiverDetector",
    "RobustBaseline",
    "RowScores",
    "Scores",
    "SeasonalBaseline",
    "SeriesDetector",
    "SeriesIndex",
    "Silence",
    "Stuck",
    "classification",
    "default_detector",
    "make_detector",
    "p_to_score",
    "rounds",
    "score_rows",
    "z_to_score",
]
