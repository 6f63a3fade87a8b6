"""Trajectory features on hand-built tracks with known answers, and movers recovered by k-means."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from iotml.clustering.tracks import Track
from iotml.clustering.trajectory import (
    EARTH_RADIUS_M,
    FEATURE_NAMES,
    MODE_FEATURES,
    StopRule,
    haversine_m,
    track_features,
    trajectory_features,
)
from iotml.errors import ConfigError

from .movers import make_movers


def _feature(
    track: Track, name: str, stops: StopRule | None = None, smooth_window: int = 3
) -> float:
    row = track_features(track, stops=stops, smooth_window=smooth_window)
    return float(row[FEATURE_NAMES.index(name)])


def _line(speed: float, t: np.ndarray) -> Track:
    return Track("line", t=t, x=speed * t, y=0.5 * speed * t, planar=True)


def test_straight_line_at_constant_speed() -> None:
    track = _line(2.0, np.arange(0.0, 60.0, 1.0))
    row = dict(zip(FEATURE_NAMES, track_features(track), strict=True))
    speed = 2.0 * np.hypot(1.0, 0.5)
    assert row["straightness"] == pytest.approx(1.0)
    assert row["speed_mean"] == pytest.approx(speed)
    assert row["speed_median"] == pytest.approx(speed)
    assert row["speed_p90"] == pytest.approx(speed)
    assert row["speed_std"] == pytest.approx(0.0, abs=1e-9)
    assert row["accel_mean_abs"] == pytest.approx(0.0, abs=1e-9)
    assert row["distance_m"] == pytest.approx(59 * speed)
    assert row["duration_s"] == pytest.approx(59.0)
    assert row["stop_count"] == 0
    assert row["dwell_share"] == 0
    assert row["turn_rate_per_m"] == pytest.approx(0.0, abs=1e-9)
    assert row["has_clock"] == 0
    assert row["hour_sin"] == 0


def test_one_thirty_second_stop_is_one_stop() -> None:
    t = np.arange(0.0, 90.0, 1.0)
    x = np.concatenate([np.arange(30) * 10.0, np.full(30, 300.0), 300 + np.arange(1, 31) * 10.0])
    planar = Track("bus", t=t, x=x, y=np.zeros(90), planar=True)
    row = dict(zip(FEATURE_NAMES, track_features(planar, stops=StopRule(1.0, 10.0)), strict=True))
    assert row["stop_count"] == 1
    assert row["dwell_share"] == pytest.approx(30 / 89, abs=2 / 89)
    assert row["stops_per_km"] == pytest.approx(1 / 0.59, rel=0.05)


def test_short_wait_below_min_duration_is_not_a_stop() -> None:
    t = np.arange(0.0, 40.0, 1.0)
    x = np.concatenate([np.arange(15) * 10.0, np.full(5, 150.0), 150 + np.arange(1, 21) * 10.0])
    track = Track("car", t=t, x=x, y=np.zeros(40), planar=True)
    assert _feature(track, "stop_count", stops=StopRule(1.0, 10.0)) == 0


def test_square_returns_home_with_three_right_turns() -> None:
    side = np.arange(10.0)
    x = np.concatenate([side, np.full(10, 10.0), 10 - side, np.zeros(11)])
    y = np.concatenate([np.zeros(10), side, np.full(10, 10.0), 10 - np.arange(11.0)])
    track = Track("square", t=np.arange(41.0), x=x, y=y, planar=True)
    row = dict(zip(FEATURE_NAMES, track_features(track), strict=True))
    assert row["distance_m"] == pytest.approx(40.0)
    assert row["straightness"] == pytest.approx(0.0, abs=1e-9)
    assert row["turn_rate_per_m"] == pytest.approx(3 * (np.pi / 2) / 40)
    assert row["turn_rate_per_s"] == pytest.approx(3 * (np.pi / 2) / 40)


def test_haversine_distance_along_a_meridian() -> None:
    assert float(haversine_m(0.0, 0.0, 0.0, 1.0)) == pytest.approx(111_195.08, abs=0.1)
    # Paris (48.8566, 2.3522) to London (51.5074, -0.1278): 343.5 km great-circle
    assert float(haversine_m(48.8566, 2.3522, 51.5074, -0.1278)) == pytest.approx(343_500, rel=2e-3)
    lat = np.array([10.0, 10.0005, 10.001])
    track = Track("gps", t=np.array([0.0, 10.0, 20.0]), x=np.full(3, -37.0), y=lat, planar=False)
    expected = EARTH_RADIUS_M * np.radians(0.001)  # 111.2 m north in 20 s
    assert _feature(track, "distance_m", smooth_window=1) == pytest.approx(expected)
    assert _feature(track, "speed_mean", smooth_window=1) == pytest.approx(expected / 20)


def test_wall_clock_features_for_gps() -> None:
    # 2014-09-13 (a Saturday) 06:00 to 06:00:20 wall clock, written as seconds since 1970
    start = 1_410_588_000.0
    track = Track(
        "gps",
        t=start + np.array([0.0, 10.0, 20.0]),
        x=np.full(3, -37.0),
        y=np.array([10.0, 10.0005, 10.001]),
        planar=False,
        clock=True,
    )
    row = dict(zip(FEATURE_NAMES, track_features(track), strict=True))
    assert row["has_clock"] == 1
    assert row["weekend"] == 1
    assert row["hour_sin"] == pytest.approx(1.0, abs=1e-3)  # 06:00 is a quarter of the day


def test_irregular_sampling_keeps_the_speed_estimate() -> None:
    rng = np.random.default_rng(3)
    regular = np.arange(0.0, 300.0, 1.0)
    irregular = np.cumsum(rng.uniform(0.2, 3.0, 200))
    irregular = irregular[irregular < 300]

    def wavy(t: np.ndarray) -> Track:  # 1.5 m/s along a gentle sine
        return Track("w", t=t, x=1.5 * t, y=2.0 * np.sin(t / 20), planar=True)

    for name in ("speed_mean", "speed_median", "speed_p90"):
        assert _feature(wavy(irregular), name) == pytest.approx(
            _feature(wavy(regular), name), rel=0.03
        )


def test_gps_spike_barely_changes_distance() -> None:
    t = np.arange(0.0, 60.0, 5.0)
    lat = -10.9 + np.arange(12) * 0.0003
    spiky = lat.copy()
    spiky[6] += 0.002  # one fix 220 m off the road
    clean = Track("c", t=t, x=np.full(12, -37.0), y=lat, planar=False)
    noisy = Track("n", t=t, x=np.full(12, -37.0), y=spiky, planar=False)
    assert _feature(noisy, "distance_m") == pytest.approx(_feature(clean, "distance_m"), rel=0.05)


def test_too_short_and_stalled_tracks_are_skipped_with_reasons() -> None:
    t = np.array([0.0, 1.0, 1.0, 0.5, 2.0])
    stalled = Track("stalled", t=t[:4], x=np.arange(4.0), y=np.zeros(4), planar=True)
    fine = Track("fine", t=t, x=np.arange(5.0), y=np.zeros(5), planar=True)
    nan = Track(
        "nan", t=np.arange(4.0), x=np.array([0, np.nan, np.nan, 3.0]), y=np.zeros(4), planar=True
    )
    result = trajectory_features([stalled, fine, nan])
    assert result.track_ids == ["fine"]
    assert result.positions.tolist() == [1]
    assert result.matrix.shape == (1, len(FEATURE_NAMES))
    assert "2 valid points" in result.skipped["stalled"]
    assert "2 valid points" in result.skipped["nan"]


def test_even_smoothing_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="smooth_window"):
        track_features(_line(1.0, np.arange(5.0)), smooth_window=2)


def test_kmeans_recovers_synthetic_movers() -> None:
    tracks, groups = make_movers(30, seed=0)
    result = trajectory_features(tracks)
    assert not result.skipped
    scaled = StandardScaler().fit_transform(result.matrix)
    found = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(scaled)
    assert adjusted_rand_score(groups, found) >= 0.9


def test_movers_are_seeded() -> None:
    first, _ = make_movers(2, seed=7)
    again, _ = make_movers(2, seed=7)
    other, _ = make_movers(2, seed=8)
    np.testing.assert_array_equal(first[0].x, again[0].x)
    assert not np.array_equal(first[0].x[:10], other[0].x[:10])


def test_select_keeps_rows_and_orders_columns() -> None:
    tracks, _ = make_movers(2)
    full = trajectory_features(tracks)
    picked = full.select(["straightness", "speed_mean"])
    assert picked.names == ("straightness", "speed_mean")
    assert picked.track_ids == full.track_ids
    np.testing.assert_array_equal(picked.matrix[:, 1], full.matrix[:, 2])
    assert set(MODE_FEATURES) <= set(FEATURE_NAMES)
    with pytest.raises(ConfigError, match="no_such"):
        full.select(["no_such"])
