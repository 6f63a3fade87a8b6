"""Per-track movement features for clustering: speed, stops, straightness, turning, time.

Each :class:`~iotml.clustering.tracks.Track` becomes one row of :data:`FEATURE_NAMES`.
The computation is vectorised per track and made robust to the two habits of real data:

* **Irregular sampling.** Speeds come from the actual time between points, and every
  speed statistic is weighted by that time (a densely sampled minute does not outweigh a
  sparsely sampled one). Points whose time does not advance are dropped.
* **Jitter.** Positions are smoothed with a centred rolling median (``smooth_window``
  points, 3 by default; 1 disables it) before anything is measured, which removes isolated
  GPS spikes without cutting corners, and headings are only taken while moving faster than
  the stop speed, where position noise no longer dominates the direction.

Distances are haversine (great-circle) metres for GPS tracks and Euclidean for planar
tracks. A *stop* is a run of segments slower than :attr:`StopRule.speed_mps` lasting at
least :attr:`StopRule.min_duration_s`; by default vehicles (GPS tracks) use 1 m/s for 10 s
and pedestrians (planar tracks) 0.2 m/s for 2 s.

>>> import numpy as np
>>> from iotml.clustering.tracks import Track
>>> t = np.arange(5.0)
>>> line = Track("a", t=t, x=2.0 * t, y=np.zeros(5), planar=True)
>>> row = track_features(line)
>>> float(row[FEATURE_NAMES.index("speed_mean")]), float(row[FEATURE_NAMES.index("straightness")])
(2.0, 1.0)
"""

from __future__ import annotations

__all__ = [
    "EARTH_RADIUS_M",
    "FEATURE_NAMES",
    "MODE_FEATURES",
    "PEDESTRIAN_STOPS",
    "VEHICLE_STOPS",
    "StopRule",
    "TrajectoryFeatures",
    "haversine_m",
    "track_features",
    "trajectory_features",
]

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from iotml.clustering.tracks import Track
from iotml.errors import ConfigError, InvalidData

FloatArray = npt.NDArray[np.float64]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG) used for haversine distances."""

FEATURE_NAMES: tuple[str, ...] = (
    "distance_m",
    "duration_s",
    "speed_mean",
    "speed_median",
    "speed_p90",
    "speed_std",
    "speed_cv",
    "accel_mean_abs",
    "accel_p90_abs",
    "stop_count",
    "dwell_share",
    "stops_per_km",
    "straightness",
    "turn_rate_per_m",
    "turn_rate_per_s",
    "hour_sin",
    "hour_cos",
    "weekend",
    "has_clock",
)
"""Column names of the feature matrix (speeds m/s, accelerations m/s², turning rad)."""

MODE_FEATURES: tuple[str, ...] = ("accel_mean_abs", "accel_p90_abs", "turn_rate_per_s")
"""How smoothly a mover moves: how hard it speeds up or brakes, and how often it turns,
per second. The subset for telling modes of transport apart (a bus rides smoothly and
straight; a car accelerates and turns more), after the velocity- and heading-change rates
of Zheng et al. (2008). It was chosen on the even-numbered half of go_track's tracks; see
BENCHMARKS.md for its score on the other half."""

_MIN_POINTS = 3
_DAY_S = 86_400.0
_MIN_KM = 0.001  # stops per km of a track that barely moves: count over at least 1 m


@dataclass(frozen=True)
class StopRule:
    """What counts as a stop: slower than ``speed_mps`` for at least ``min_duration_s``."""

    speed_mps: float
    min_duration_s: float

    def __post_init__(self) -> None:
        if not (self.speed_mps > 0 and self.min_duration_s >= 0):
            raise ConfigError(
                f"StopRule needs speed_mps > 0 and min_duration_s >= 0, "
                f"got {self.speed_mps!r}, {self.min_duration_s!r}"
            )


VEHICLE_STOPS = StopRule(speed_mps=1.0, min_duration_s=10.0)
"""Default for GPS tracks: a vehicle waiting at a light or bus stop."""

PEDESTRIAN_STOPS = StopRule(speed_mps=0.2, min_duration_s=2.0)
"""Default for planar tracks: a pedestrian standing still."""


class TrajectoryFeatures(NamedTuple):
    """Feature matrix for the tracks that could be measured, and why others were skipped.

    ``matrix[i]`` belongs to ``track_ids[i]``, which is ``tracks[positions[i]]`` of the input.
    """

    matrix: FloatArray
    names: tuple[str, ...]
    track_ids: list[str]
    positions: npt.NDArray[np.int64]
    skipped: dict[str, str]

    def select(self, names: Sequence[str]) -> TrajectoryFeatures:
        """The same rows with only the named columns, in the order given.

        >>> import numpy as np
        >>> from iotml.clustering.tracks import Track
        >>> t = np.arange(5.0)
        >>> f = trajectory_features([Track("a", t=t, x=t, y=0 * t, planar=True)])
        >>> f.select(["speed_mean", "straightness"]).matrix.round(3).tolist()
        [[1.0, 1.0]]
        """
        unknown = [n for n in names if n not in self.names]
        if unknown or not names:
            raise ConfigError(f"feature names {list(names)}; expected some of {list(self.names)}")
        cols = [self.names.index(n) for n in names]
        return self._replace(matrix=self.matrix[:, cols], names=tuple(names))


def haversine_m(
    lat1: FloatArray | float,
    lon1: FloatArray | float,
    lat2: FloatArray | float,
    lon2: FloatArray | float,
) -> FloatArray:
    """Great-circle distance in metres between points given in degrees.

    >>> round(float(haversine_m(0.0, 0.0, 0.0, 1.0)), 1)  # one degree along the equator
    111195.1
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))), np.float64)


def _rolling_median(values: FloatArray, window: int) -> FloatArray:
    if window <= 1 or len(values) < window:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.asarray(np.median(windows, axis=1), np.float64)


def _valid_points(track: Track) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Finite points whose time moves strictly forward (later ones that do not are dropped)."""
    finite = np.isfinite(track.t) & np.isfinite(track.x) & np.isfinite(track.y)
    t, x, y = track.t[finite], track.x[finite], track.y[finite]
    forward = np.ones(len(t), dtype=bool)
    if len(t) > 1:
        forward[1:] = t[1:] > np.maximum.accumulate(t)[:-1]
    if int(forward.sum()) < _MIN_POINTS:
        raise InvalidData(
            f"track {track.id!r}: {int(forward.sum())} valid points (finite, time advancing) "
            f"of {len(track)}; need at least {_MIN_POINTS}"
        )
    return t[forward], x[forward], y[forward]


def _steps(
    x: FloatArray, y: FloatArray, planar: bool
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Step lengths (m), east/north step components (m) and start-to-end displacement (m)."""
    if planar:
        de, dn = np.diff(x), np.diff(y)
        return np.hypot(de, dn), de, dn, float(np.hypot(x[-1] - x[0], y[-1] - y[0]))
    # local equirectangular frame for directions; haversine for lengths
    lat0 = np.radians(np.mean(y))
    de = EARTH_RADIUS_M * np.radians(np.diff(x)) * np.cos(lat0)
    dn = EARTH_RADIUS_M * np.radians(np.diff(y))
    steps = haversine_m(y[:-1], x[:-1], y[1:], x[1:])
    return steps, de, dn, float(haversine_m(y[0], x[0], y[-1], x[-1]))


def _weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def _speed_stats(v: FloatArray, dt: FloatArray, distance: float, duration: float) -> list[float]:
    mean = distance / duration
    std = float(np.sqrt(np.sum(dt * (v - mean) ** 2) / duration))
    median, p90 = _weighted_quantile(v, dt, 0.5), _weighted_quantile(v, dt, 0.9)
    return [mean, median, p90, std, std / mean if mean > 0 else 0.0]


def _accel_stats(v: FloatArray, dt: FloatArray) -> list[float]:
    gap = (dt[:-1] + dt[1:]) / 2  # time between the midpoints of consecutive segments
    accel = np.abs(np.diff(v)) / gap
    return [float(np.sum(accel * gap) / np.sum(gap)), _weighted_quantile(accel, gap, 0.9)]


def _stops(v: FloatArray, dt: FloatArray, rule: StopRule) -> tuple[int, float]:
    """Number of slow runs lasting at least the rule's minimum, and their total duration."""
    slow = np.concatenate(([0], (v < rule.speed_mps).astype(np.int8), [0]))
    edges = np.diff(slow)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    cum = np.concatenate(([0.0], np.cumsum(dt)))
    lengths = cum[ends] - cum[starts]
    stops = lengths[lengths >= rule.min_duration_s]
    return len(stops), float(stops.sum())


def _turning(
    de: FloatArray, dn: FloatArray, v: FloatArray, dt: FloatArray, steps: FloatArray, rule: StopRule
) -> list[float]:
    """Absolute heading change per metre and per second, over moving segments only."""
    moving = (v >= rule.speed_mps) & (steps > 0)
    if int(moving.sum()) < 2:
        return [0.0, 0.0]
    heading = np.arctan2(dn[moving], de[moving])
    turn = float(np.sum(np.abs(np.angle(np.exp(1j * np.diff(heading))))))
    return [turn / float(steps[moving].sum()), turn / float(dt[moving].sum())]


def _clock(t: FloatArray, has_clock: bool) -> list[float]:
    if not has_clock:
        return [0.0, 0.0, 0.0, 0.0]
    hour = ((t[0] + t[-1]) / 2 % _DAY_S) / 3600.0  # the trip's middle, wall-clock hour
    weekday = (int(t[0] // _DAY_S) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    angle = 2 * np.pi * hour / 24
    return [float(np.sin(angle)), float(np.cos(angle)), float(weekday >= 5), 1.0]


def track_features(
    track: Track, *, stops: StopRule | None = None, smooth_window: int = 3
) -> FloatArray:
    """One track's features, in the order of :data:`FEATURE_NAMES`.

    Parameters
    ----------
    track : Track
        GPS (lat/lon) or planar (x/y metres) track.
    stops : StopRule, optional
        Stop definition; default :data:`VEHICLE_STOPS` for GPS, :data:`PEDESTRIAN_STOPS`
        for planar tracks. Headings are ignored below its speed.
    smooth_window : int
        Odd rolling-median window over positions (1 = no smoothing).

    Raises
    ------
    InvalidData
        If fewer than 3 points are finite with advancing time; the message is the reason.
    """
    if smooth_window < 1 or smooth_window % 2 == 0:
        raise ConfigError(f"smooth_window must be an odd integer >= 1, got {smooth_window!r}")
    rule = stops or (PEDESTRIAN_STOPS if track.planar else VEHICLE_STOPS)
    t, x, y = _valid_points(track)
    x, y = _rolling_median(x, smooth_window), _rolling_median(y, smooth_window)
    steps, de, dn, displacement = _steps(x, y, track.planar)
    dt = np.diff(t)
    v = steps / dt
    distance, duration = float(steps.sum()), float(t[-1] - t[0])
    count, dwell = _stops(v, dt, rule)
    row = [distance, duration, *_speed_stats(v, dt, distance, duration), *_accel_stats(v, dt)]
    row += [count, dwell / duration, count / max(distance / 1000, _MIN_KM)]
    row += [displacement / distance if distance > 0 else 0.0]
    row += _turning(de, dn, v, dt, steps, rule) + _clock(t, track.clock)
    return np.array(row, dtype=np.float64)


def trajectory_features(
    tracks: Sequence[Track], *, stops: StopRule | None = None, smooth_window: int = 3
) -> TrajectoryFeatures:
    """Feature matrix for many tracks; tracks that cannot be measured are skipped with a reason.

    >>> import numpy as np
    >>> from iotml.clustering.tracks import Track
    >>> t = np.arange(4.0)
    >>> ok = Track("ok", t=t, x=t, y=t, planar=True)
    >>> short = Track("short", t=t[:2], x=t[:2], y=t[:2], planar=True)
    >>> result = trajectory_features([ok, short])
    >>> result.matrix.shape, result.track_ids, list(result.skipped)
    ((1, 19), ['ok'], ['short'])
    """
    rows, ids, index, skipped = [], [], [], {}
    for i, track in enumerate(tracks):
        try:
            rows.append(track_features(track, stops=stops, smooth_window=smooth_window))
        except InvalidData as err:
            skipped[track.id] = str(err)
            continue
        ids.append(track.id)
        index.append(i)
    matrix = np.vstack(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
    return TrajectoryFeatures(matrix, FEATURE_NAMES, ids, np.array(index, dtype=np.int64), skipped)
