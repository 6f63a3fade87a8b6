"""ClusterModel: tracks and meter days fitted, assigned, summarised, saved and refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
from sklearn.metrics import adjusted_rand_score

from iotml.clustering.model import ClusterModel
from iotml.clustering.profiles import DailyProfiles, daily_profiles
from iotml.clustering.tracks import Track
from iotml.clustering.trajectory import MODE_FEATURES
from iotml.errors import BundleError, ConfigError, UntrustedBundle
from iotml.registry import ModelRegistry

from .movers import make_movers

_START = np.datetime64("2024-01-01T00", "h")  # a Monday


def meter_days(n_days: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly load: even days peak at 19:00, odd days at 07:00; day 3 has only 4 hours."""
    t = _START + np.arange(24 * n_days).astype("timedelta64[h]")
    hour, day = np.arange(t.size) % 24, np.arange(t.size) // 24
    peak = np.where(day % 2 == 0, 19, 7)
    load = np.where(hour == peak, 4.0, 1.0) + np.random.default_rng(seed).normal(0, 0.2, t.size)
    keep = (day != 3) | (hour < 4)
    return t[keep], load[keep]


@pytest.fixture(scope="module")
def movers() -> list[Track]:
    return make_movers(10, seed=0)[0]


@pytest.fixture(scope="module")
def days() -> DailyProfiles:
    return daily_profiles(*meter_days())


@pytest.fixture(scope="module")
def tracks_model(movers: list[Track]) -> ClusterModel:
    return ClusterModel("tracks", k=3, seeds=3).fit(movers)


@pytest.fixture(scope="module")
def days_model(days: DailyProfiles) -> ClusterModel:
    return ClusterModel("profiles", k_range=(2, 4), seeds=3).fit(days)


# -- tracks ---------------------------------------------------------------------------------


def test_tracks_recover_the_movers_with_words_and_ari(tracks_model: ClusterModel) -> None:
    figures = tracks_model.summary()
    assert figures["kind"] == "tracks"
    assert figures["rows"] == 30
    assert figures["skipped"] == 0
    assert figures["k"] == 3
    assert figures["ks"] == [2, 3, 4, 5, 6, 7, 8]
    assert len(figures["silhouettes"]) == len(figures["inertia"]) == 7
    assert figures["ari"] == tracks_model.ari_
    assert figures["ari"] >= 0.9
    assert 0.9 <= figures["stability"] <= 1.0
    assert figures["distance_p95"] > 0
    # the movers carry no wall clock: the clock features are left out by default
    assert not {"hour_sin", "hour_cos", "weekend", "has_clock"} & set(figures["features"])
    profiles = figures["profiles"]
    assert sum(p["size"] for p in profiles) == 30
    assert sum(p["share"] for p in profiles) == pytest.approx(1.0)
    vehicles = tracks_model.fitted().labels_[20:]  # make_movers: 10 walkers, runners, vehicles
    words = profiles[int(np.bincount(vehicles).argmax())]["description"]
    assert "stop" in words or "wait" in words, words


def test_tracks_are_assigned_to_the_nearest_cluster(
    tracks_model: ClusterModel, movers: list[Track]
) -> None:
    table = tracks_model.assign(movers)
    assert table.column_names == ["track_id", "label", "cluster", "description", "distance"]
    assert table["track_id"].to_pylist() == [t.id for t in movers]
    assert table["label"].to_pylist() == [t.label for t in movers]
    assert table["cluster"].to_pylist() == tracks_model.fitted().labels_.tolist()
    words = tracks_model.fitted().describe()
    assert table["description"].to_pylist() == [words[c] for c in table["cluster"].to_pylist()]
    new, groups = make_movers(5, seed=11)
    assigned = tracks_model.assign(new)
    assert adjusted_rand_score(groups, assigned["cluster"].to_numpy()) >= 0.9
    distances = assigned["distance"].to_numpy()
    assert np.all(distances >= 0)
    nearest = tracks_model.fitted().distances(tracks_model.track_matrix(new)[0]).min(axis=1)
    np.testing.assert_allclose(distances, nearest)


def test_unmeasurable_tracks_are_skipped_and_unlabelled_ones_give_no_ari(
    movers: list[Track],
) -> None:
    short = Track("short", t=np.array([0.0, 1.0]), x=np.zeros(2), y=np.zeros(2), planar=True)
    model = ClusterModel("tracks", k=3, seeds=2).fit([*movers, short])
    assert model.rows_ == 30
    assert list(model.skipped_) == ["short"]
    assert model.summary()["skipped"] == 1
    assert model.assign([short, movers[0]])["track_id"].to_pylist() == [movers[0].id]
    unlabelled = [Track(t.id, t.t, t.x, t.y, planar=True) for t in movers]
    model = ClusterModel("tracks", features=MODE_FEATURES, k=3, seeds=2).fit(unlabelled)
    assert model.ari_ is None
    assert model.summary()["ari"] is None
    assert model.summary()["features"] == list(MODE_FEATURES)


# -- meter days -----------------------------------------------------------------------------


def test_days_split_by_peak_and_the_gappy_day_is_skipped(
    days_model: ClusterModel, days: DailyProfiles
) -> None:
    figures = days_model.summary()
    assert figures["kind"] == "profiles"
    assert figures["k"] == 2
    assert figures["rows"] == len(days.days) == 59
    assert figures["skipped"] == 1
    assert list(days_model.skipped_) == ["2024-01-04"]
    assert "20 of 24 hours" in days_model.skipped_["2024-01-04"]
    assert figures["ari"] is None
    assert figures["features"][:24] == [f"h{h:02d}" for h in range(24)]
    assert "peak_hour_sin" in figures["features"]
    parity = (days.days.astype("datetime64[D]").astype(np.int64) - 19723) % 2
    assert adjusted_rand_score(parity, days_model.fitted().labels_) == 1.0
    assert sorted(days_model.fitted().describe()) == ["evening peak", "morning peak"]


def test_days_are_assigned_with_their_date(days_model: ClusterModel, days: DailyProfiles) -> None:
    table = days_model.assign(days)
    assert table.column_names == ["day", "cluster", "description", "distance"]
    assert table.schema.field("day").type == pa.date32()
    assert table["day"].to_pylist()[0].isoformat() == "2024-01-01"
    assert table["cluster"].to_pylist() == days_model.fitted().labels_.tolist()
    later = daily_profiles(*meter_days(10, seed=3))
    clusters = days_model.assign(later)["cluster"].to_pylist()
    evening = days_model.fitted().describe().index("evening peak")
    # 1, 3, 5 … January are days 0, 2, 4 … of the series: evening peaks
    odd_dates = [c for c, d in zip(clusters, later.days.tolist(), strict=True) if d.day % 2]
    assert len(odd_dates) == 5
    assert set(odd_dates) == {evening}


def test_wrong_kinds_names_and_unfitted_models_are_refused(
    tracks_model: ClusterModel, days_model: ClusterModel, days: DailyProfiles, movers: list[Track]
) -> None:
    with pytest.raises(ConfigError, match="this model groups tracks; it was given profiles"):
        tracks_model.assign(days)
    with pytest.raises(ConfigError, match="this model groups profiles; it was given tracks"):
        days_model.assign(movers)
    with pytest.raises(ConfigError, match="are not all tracks features"):
        ClusterModel("tracks", features=["h07"])
    with pytest.raises(ConfigError, match="are not all profiles features"):
        ClusterModel("profiles", features=list(MODE_FEATURES))
    with pytest.raises(ConfigError, match="kind is 'trips'"):
        ClusterModel("trips")
    with pytest.raises(ConfigError, match="scale is 'minmax'"):
        ClusterModel("tracks", scale="minmax")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not fitted"):
        ClusterModel("tracks").summary()


# -- bundles --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tracks", "profiles"])
def test_save_then_load_assigns_identically(
    kind: str,
    tracks_model: ClusterModel,
    days_model: ClusterModel,
    movers: list[Track],
    days: DailyProfiles,
    tmp_path: Path,
) -> None:
    model, data = (tracks_model, movers) if kind == "tracks" else (days_model, days)
    registry = ModelRegistry(tmp_path)
    manifest = model.save(registry, "groups", "1.0.0")
    assert manifest.task == "clustering"
    assert manifest.input_schema["kind"] == kind
    assert manifest.input_schema["features"] == model.summary()["features"]
    assert manifest.meta["descriptions"] == model.fitted().describe()
    assert manifest.metrics["k"] == model.fitted().k_
    assert ("ari" in manifest.metrics) == (kind == "tracks")
    assert model.ref == "groups@1.0.0"
    loaded = ClusterModel.load(registry, "groups")
    assert loaded.ref == "groups@1.0.0"
    assert (loaded.kind, loaded.scale, loaded.seeds) == (model.kind, model.scale, model.seeds)
    assert loaded.assign(data).equals(model.assign(data))
    figures, again = model.summary(), loaded.summary()
    for key in ("k", "features", "silhouette", "stability", "distance_p95", "profiles", "rows"):
        assert again[key] == figures[key], key


def test_tampered_bundles_are_refused(tracks_model: ClusterModel, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    tracks_model.save(registry, "groups", "1.0.0")
    tracks_model.save(registry, "groups", "2.0.0")
    pickled = registry.path("groups", "1.0.0") / "clusters.joblib"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="the file was altered"):
        ClusterModel.load(registry, "groups", "1.0.0")
    manifest = registry.path("groups", "2.0.0") / "manifest.json"
    body = orjson.loads(manifest.read_bytes())
    body["input_schema"]["smooth_window"] = 1
    manifest.write_bytes(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    with pytest.raises(UntrustedBundle):
        ClusterModel.load(registry, "groups", "2.0.0")


def test_bundles_with_other_features_or_tasks_are_refused(
    tracks_model: ClusterModel, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    meta = tracks_model.save(registry, "groups", "1").meta
    schema = tracks_model.input_schema()
    clusters = {"clusters.joblib": tracks_model.fitted()}
    fewer = {**schema, "features": schema["features"][:3]}
    registry.save("fewer", "1", task="clustering", objects=clusters, input_schema=fewer, meta=meta)
    with pytest.raises(BundleError, match="do not match its feature list"):
        ClusterModel.load(registry, "fewer")
    renamed = {**schema, "features": ["warp_speed", *schema["features"][1:]]}
    registry.save("renamed", "1", task="clustering", objects=clusters, input_schema=renamed,
                  meta=meta)  # fmt: skip
    with pytest.raises(BundleError, match="malformed settings"):
        ClusterModel.load(registry, "renamed")
    registry.save("other", "1", task="netsec", objects=clusters, input_schema=schema, meta=meta)
    with pytest.raises(BundleError, match="is not a clustering model"):
        ClusterModel.load(registry, "other")
