"""BehaviourClusters: k by silhouette, stability, assignment, words; the cluster plots."""

# ruff: noqa: N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.clustering.kmeans import BehaviourClusters
from iotml.clustering.plots import plot_centroids, plot_profiles, plot_selection, plot_tracks
from iotml.errors import ConfigError, InvalidData

NAMES = ["speed_mean", "stops_per_km", "straightness", "hour_sin", "hour_cos"]


def _blobs(n: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three movers: slow stop-and-go at 8 am, fast straight at 1 pm, medium winding at 7 pm."""
    rng = np.random.default_rng(seed)
    centres = [(2.0, 8.0, 0.5, 8.0), (20.0, 0.5, 0.95, 13.0), (10.0, 2.0, 0.2, 19.0)]
    rows, truth = [], []
    for g, (speed, stops, straight, hour) in enumerate(centres):
        h = rng.normal(hour, 0.5, n) * 2 * np.pi / 24
        rows.append(
            np.column_stack([rng.normal(speed, 0.8, n), rng.normal(stops, 0.5, n),
                             rng.normal(straight, 0.04, n), np.sin(h), np.cos(h)])
        )  # fmt: skip
        truth += [g] * n
    return np.vstack(rows), np.array(truth)


@pytest.fixture(scope="module")
def fitted() -> tuple[BehaviourClusters, np.ndarray, np.ndarray]:
    X, truth = _blobs()
    return BehaviourClusters(seeds=5).fit(X, NAMES), X, truth


def test_k_is_chosen_by_silhouette(
    fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray],
) -> None:
    bc, _, truth = fitted
    assert bc.k_ == 3
    assert bc.ks_ == list(range(2, 9))
    assert bc.silhouettes_[bc.ks_.index(3)] == max(bc.silhouettes_) == bc.silhouette_
    assert np.all(np.diff(bc.inertia_) < 0)  # the elbow curve falls with k
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, bc.labels_) == 1.0


def test_stability_across_seeds(fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]) -> None:
    assert fitted[0].stability_ >= 0.9


def test_predict_is_consistent(fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]) -> None:
    bc, X, _ = fitted
    assert np.array_equal(bc.predict(X), bc.labels_)
    fresh, truth = _blobs(n=10, seed=7)
    labels = bc.predict(fresh)
    mapping = {int(bc.predict(X[[i * 60]])[0]): i for i in range(3)}
    assert [mapping[int(c)] for c in labels] == truth.tolist()


def test_describe_uses_the_distinctive_words(
    fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray],
) -> None:
    bc, X, _ = fitted
    words = {i: bc.describe()[int(bc.predict(X[[i * 60]])[0])] for i in range(3)}
    assert "slow" in words[0]
    assert "many stops" in words[0]
    assert "fast" in words[1]
    assert "winding" in words[2] or "evening" in words[2]
    for text in words.values():
        assert 1 <= len(text.split(", ")) <= 3


def test_time_of_day_words() -> None:
    X, _ = _blobs()
    bc = BehaviourClusters(k=3, seeds=2).fit(X[:, 3:], NAMES[3:])
    assert sorted(bc.describe()) == ["afternoon", "evening", "morning"]


def test_single_peak_hour_column_read_circularly() -> None:
    rng = np.random.default_rng(3)
    late = rng.normal(23.5, 0.3, 50) % 24  # around midnight: 23.x and 0.x
    early = rng.normal(8.0, 0.3, 50)
    bc = BehaviourClusters(k=2, seeds=2).fit(np.r_[late, early][:, None], ["peak_hour"])
    assert sorted(bc.describe()) == ["morning peak", "night peak"]


def test_custom_words_and_fallback() -> None:
    X, _ = _blobs()
    bc = BehaviourClusters(k=3, seeds=2, words=[(r"stops", "calm", "busy")])
    bc.fit(X[:, :3], ["speed_mean", "stops_per_km", "oddity"])
    text = " ".join(bc.describe())
    assert "busy" in text
    assert "many stops" not in text
    assert "oddity" in text  # no word pair for it: "low oddity" / "high oddity"


def test_profile_table(fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]) -> None:
    bc, _, _ = fitted
    table = bc.profile_table()
    assert [row["size"] for row in table] == [60, 60, 60]
    assert sum(row["share"] for row in table) == pytest.approx(1.0)
    speeds = sorted(row["speed_mean"] for row in table)
    assert speeds == pytest.approx([2.0, 10.0, 20.0], abs=0.5)
    assert {row["description"] for row in table} == set(bc.describe())


def test_fixed_k_and_standard_scaling() -> None:
    X, _ = _blobs()
    bc = BehaviourClusters(k=4, k_range=(2, 3), scale="standard", seeds=2).fit(X, NAMES)
    assert bc.k_ == 4
    assert bc.ks_ == [2, 3]
    assert len(bc.describe()) == 4


def test_fit_does_not_mutate_input(
    fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray],
) -> None:
    X, _ = _blobs()
    before = X.copy()
    BehaviourClusters(k=3, seeds=2).fit(X, NAMES)
    assert np.array_equal(X, before)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k_range": (1, 3)}, ConfigError),
        ({"k_range": (4, 3)}, ConfigError),
        ({"seeds": 1}, ConfigError),
        ({"scale": "minmax"}, ConfigError),
        ({"k": 500}, ConfigError),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object], error: type[Exception]) -> None:
    X, _ = _blobs(n=10)
    with pytest.raises(error):
        BehaviourClusters(**kwargs).fit(X, NAMES)  # type: ignore[arg-type]


def test_bad_data_is_rejected(fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]) -> None:
    X, _ = _blobs(n=10)
    with pytest.raises(InvalidData, match="shape"):
        BehaviourClusters().fit(X, NAMES[:2])
    X[3, 1] = np.nan
    with pytest.raises(InvalidData, match="row 3"):
        BehaviourClusters().fit(X, NAMES)
    with pytest.raises(InvalidData, match="at least 3"):
        BehaviourClusters().fit(X[:2, :], NAMES)
    with pytest.raises(InvalidData, match="row 3"):
        fitted[0].predict(X)


def test_plots_write_pngs(
    tmp_path: Path, fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]
) -> None:
    bc, _, _ = fitted
    rng = np.random.default_rng(0)
    shapes = rng.random((12, 24))
    tracks = [(np.cumsum(rng.normal(size=30)), np.cumsum(rng.normal(size=30))) for _ in range(6)]
    paths = [
        plot_selection(bc, tmp_path / "selection.png"),
        plot_centroids(bc, tmp_path / "centroids.png"),
        plot_profiles(shapes, np.arange(12) % 3, tmp_path / "sub" / "profiles.png"),
        plot_tracks(tracks, [0, 1, 2, 0, 1, 2], tmp_path / "tracks.png", names=["a", "b", "c"]),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 1000
    with pytest.raises(ConfigError):
        plot_tracks(tracks, [0, 1], tmp_path / "x.png")
    with pytest.raises(ConfigError):
        plot_profiles(shapes, [0], tmp_path / "x.png")


def test_quantile_scaling_keeps_outliers_from_taking_a_cluster() -> None:
    """Two groups plus three extreme rows: mean/std scaling gives the extremes a cluster of
    their own, rank scaling still finds the two groups (the reason it is ClusterModel's
    default for heavy-tailed rates)."""
    rng = np.random.default_rng(3)
    groups = np.vstack([rng.normal(1.0, 0.3, (50, 2)), rng.normal(4.0, 0.3, (50, 2))])
    X = np.vstack([groups, [[400.0, 400.0], [500.0, 450.0], [450.0, 520.0]]])
    truth = np.repeat([0, 1], 50)
    standard = BehaviourClusters(k=2, seeds=2, scale="standard").fit(X, ["a", "b"])
    ranks = BehaviourClusters(k=2, seeds=2, scale="quantile").fit(X, ["a", "b"])
    assert sorted(standard.sizes_.tolist()) == [3, 100]
    agree = (ranks.labels_[:100] == truth).mean()
    assert max(agree, 1 - agree) == 1.0
    # centroids are the members' means in the original units: the first group's is its own
    members = ranks.labels_ == ranks.labels_[0]
    np.testing.assert_allclose(ranks.centroids_[ranks.labels_[0]], X[members].mean(axis=0))


def test_distances_to_centroids(fitted: tuple[BehaviourClusters, np.ndarray, np.ndarray]) -> None:
    clusters, X, _ = fitted
    d = clusters.distances(X)
    assert d.shape == (len(X), clusters.k_)
    np.testing.assert_array_equal(d.argmin(axis=1), clusters.predict(X))
    np.testing.assert_allclose(d.min(axis=1), clusters.distance_)
    far = clusters.distances(X[:1] + 100.0).min()
    assert far > 10 * np.percentile(clusters.distance_, 95)


def test_robust_scaling_scales_a_column_that_is_mostly_one_value() -> None:
    """A stop count that is 0 for most rows has IQR 0: it is scaled by its std, not left
    in raw units (scikit-learn's choice) where its few large values would swamp the rest."""
    rng = np.random.default_rng(4)
    speed = np.concatenate([rng.normal(1.0, 0.1, 60), rng.normal(3.0, 0.1, 60)])
    stops = np.zeros(120)
    stops[rng.choice(120, 10, replace=False)] = rng.uniform(500, 3000, 10)
    X = np.column_stack([speed, stops])
    clusters = BehaviourClusters(k=2, seeds=2, scale="robust").fit(X, ["speed_mean", "stops"])
    assert clusters.scaler_.scale_[1] == pytest.approx(stops.std())
    assert clusters.scaler_.transform(X)[:, 1].std() == pytest.approx(1.0)
    assert clusters.scaler_.scale_[0] == pytest.approx(np.subtract(*np.percentile(speed, [75, 25])))


def test_track_plots_frame_the_tracks_near_the_common_centre() -> None:
    from iotml.clustering.plots import _zoom_to_core

    class Axes:
        def __init__(self) -> None:
            self.limits: dict[str, tuple[float, float]] = {}

        def set_xlim(self, lo: float, hi: float) -> None:
            self.limits["x"] = (lo, hi)

        def set_ylim(self, lo: float, hi: float) -> None:
            self.limits["y"] = (lo, hi)

    near = [(np.linspace(i, i + 1, 50), np.linspace(0, 2, 50)) for i in range(5)]
    far = (np.linspace(500, 600, 500), np.linspace(500, 600, 500))  # another city, many points
    ax = Axes()
    _zoom_to_core(ax, [*near, far])
    assert ax.limits["x"] == pytest.approx((-0.25, 5.25))
    assert ax.limits["y"] == pytest.approx((-0.1, 2.1))
