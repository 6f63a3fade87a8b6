"""NAB-style scoring of a streaming detector: labelled windows, early detection rewarded.

The rules of the Numenta Anomaly Benchmark (Lavin & Ahmad, "Evaluating Real-time Anomaly
Detection Algorithms — the Numenta Anomaly Benchmark", ICMLA 2015, and NAB's
``nab/scorer.py`` / ``nab/sweeper.py``), written from their description:

* **Windows.** Each labelled anomaly of a series gets a window centred on it, of width
  ``10 % of the series' length / number of its anomalies`` (:func:`windows`); windows that
  overlap are merged.
* **Probation.** The first 15 % of a series (at most 750 readings) is the detector's to
  learn: detections there count for nothing.
* **Detections** are the readings whose score reaches the threshold. In a window only the
  *first* detection counts, weighted by where it falls: ``A_TP * s(y)`` with the scaled
  sigmoid ``s(y) = 2 / (1 + e^{5y}) - 1`` of its relative position ``y`` in ``[-1, 0]``
  (``-1`` the window's first reading, ``0`` its last), so an early detection earns close
  to ``A_TP`` and one at the end almost nothing. The later detections of a window are
  ignored.
* **False positives** outside every window cost ``A_FP * s(y)`` (s negative there), ``y``
  the distance past the end of the preceding window in window widths: one just after a
  window costs little (it may be the same event, reported late), one far from any window
  the full ``A_FP``. Before the first window a false positive costs the full ``A_FP``.
* **Misses**: a window without a detection costs ``A_FN``.
* **Normalised score** over a corpus: ``100 * (S - S_null) / (S_perfect - S_null)``, where
  the null detector detects nothing (``-A_FN`` per window) and the perfect one detects every
  window at its first reading. Raising no alarm scores 0; random scores are usually
  around 10-20 for the standard profile.
* **Threshold**: NAB reports each detector at the single threshold, the same for the whole
  corpus, that maximises its raw score for the profile (:func:`best_threshold`). That is an
  optimisation on the scored data: report it beside the score at the detector's own
  pre-declared threshold.

Profiles (``A_TP``, ``A_FP``, ``A_FN``): ``standard`` (1, 0.11, 1), ``reward_low_FP``
(1, 0.22, 1), ``reward_low_FN`` (1, 0.11, 2).

>>> import numpy as np
>>> label = np.zeros(1000, bool); label[600] = True
>>> w = windows(1000, np.flatnonzero(label))
>>> w.tolist()  # width 100 around reading 600
[[550, 650]]
>>> score = np.zeros(1000); score[560] = 1.0  # an early detection
>>> r = score_series(score >= 0.5, w, PROFILES["standard"])
>>> round(r.raw, 3), r.tp, r.fp, r.fn
(0.978, 1, 0, 0)
>>> round(normalised([r], PROFILES["standard"]), 1)
99.6
"""

from __future__ import annotations

__all__ = [
    "PROFILES",
    "Profile",
    "SeriesResult",
    "best_threshold",
    "normalised",
    "probation",
    "scaled_sigmoid",
    "score_series",
    "windows",
]

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

WINDOW_FRACTION = 0.10
PROBATION_FRACTION = 0.15
PROBATION_MAX = 750  # NAB: 15 % of the series, but at most 15 % of 5,000 readings


@dataclass(frozen=True, slots=True)
class Profile:
    """The weights of an application profile."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("standard", 1.0, 0.11, 1.0),
        Profile("reward_low_FP", 1.0, 0.22, 1.0),
        Profile("reward_low_FN", 1.0, 0.11, 2.0),
    )
}


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """One series at one threshold: raw score, counts, and the windows it has."""

    raw: float
    tp: int
    fp: int
    fn: int
    n_windows: int


def scaled_sigmoid(y: npt.ArrayLike) -> F64:
    """NAB's weight of a detection at relative position ``y``: ``2/(1+e^{5y}) - 1``, and
    ``-1`` beyond 3 window widths past a window.

    >>> [round(float(v), 4) for v in scaled_sigmoid([-1.0, 0.0, 1.0, 4.0])]
    [0.9866, 0.0, -0.9866, -1.0]
    """
    y = np.asarray(y, dtype=np.float64)
    out: F64 = np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
    return out


def probation(n: int) -> int:
    """Readings at the start of an ``n``-reading series whose detections are ignored."""
    return min(int(np.floor(PROBATION_FRACTION * n)), PROBATION_MAX)


def windows(n: int, anomalies: npt.ArrayLike) -> I64:
    """Inclusive ``[start, end]`` reading indices of the windows around ``anomalies``.

    Width ``int(0.1 * n / k)`` for ``k`` anomalies, centred on each, clipped to the series,
    overlapping windows merged.

    >>> windows(100, [10, 12]).tolist()  # width 5 each: they overlap
    [[8, 14]]
    """
    at = np.sort(np.asarray(anomalies, dtype=np.int64).reshape(-1))
    if at.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if at[0] < 0 or at[-1] >= n:
        raise ConfigError(f"anomaly indices must lie in [0, {n}), got {at[0]}..{at[-1]}")
    half = max(int(WINDOW_FRACTION * n / at.size), 1) // 2
    merged: list[list[int]] = []
    for i in at.tolist():
        start, end = max(i - half, 0), min(i + half, n - 1)
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.asarray(merged, dtype=np.int64)


def score_series(detected: Bools, wins: I64, profile: Profile) -> SeriesResult:
    """The raw NAB score of one series' detections (``detected[i]``: reading ``i`` alarmed)."""
    detected = np.asarray(detected, dtype=bool)
    n = detected.size
    hits = np.flatnonzero(detected)
    hits = hits[hits >= probation(n)]
    start, end = (wins[:, 0], wins[:, 1]) if len(wins) else (np.zeros(0, np.int64),) * 2
    # the window each detection is in (or -1), and the last window ending before it
    before = np.searchsorted(start, hits, side="right") - 1  # last window starting <= hit
    inside = (before >= 0) & (hits <= end[np.maximum(before, 0)] if len(wins) else False)
    raw, tp = 0.0, 0
    if inside.any():
        in_win, at = before[inside], hits[inside]
        first = np.r_[True, in_win[1:] != in_win[:-1]]  # hits are sorted: first per window
        w, at = in_win[first], at[first]
        width = (end[w] - start[w] + 1).astype(np.float64)
        y = -(end[w] - at + 1) / width
        raw += float(profile.tp * scaled_sigmoid(y).sum())
        tp = int(w.size)
    out_hits, prev = hits[~inside], before[~inside]
    if out_hits.size:
        width = np.where(prev >= 0, end[prev] - start[prev] + 1, 1).astype(np.float64)
        past = np.abs(out_hits - end[np.maximum(prev, 0)]) / np.maximum(width - 1.0, 1.0)
        weight = np.where(prev >= 0, scaled_sigmoid(past), -1.0)
        raw += float(profile.fp * weight.sum())
    fn = len(wins) - tp
    raw -= profile.fn * fn
    return SeriesResult(raw, tp, int(out_hits.size), fn, len(wins))


def _perfect(n_windows: int, profile: Profile) -> float:
    return float(profile.tp * scaled_sigmoid(-1.0) * n_windows)


def normalised(results: Sequence[SeriesResult], profile: Profile) -> float:
    """``100 * (S - S_null) / (S_perfect - S_null)`` over a corpus of series."""
    k = sum(r.n_windows for r in results)
    if k == 0:
        raise ConfigError("a NAB score needs at least one labelled window in the corpus")
    null = -profile.fn * k
    return 100.0 * (sum(r.raw for r in results) - null) / (_perfect(k, profile) - null)


def best_threshold(
    scores: Sequence[F64],
    wins: Sequence[I64],
    profile: Profile,
    thresholds: npt.ArrayLike | None = None,
) -> tuple[float, float]:
    """The corpus-wide threshold with the highest normalised score, and that score.

    ``thresholds`` defaults to 0.00, 0.01, … 1.00 plus one above every score (no alarm).
    """
    grid = np.r_[np.linspace(0.0, 1.0, 101), np.inf] if thresholds is None else thresholds
    best = (float("inf"), -float("inf"))
    for t in np.asarray(grid, dtype=np.float64).tolist():
        value = normalised(
            [score_series(s >= t, w, profile) for s, w in zip(scores, wins, strict=True)],
            profile,
        )
        if value > best[1]:
            best = (t, value)
    return best
