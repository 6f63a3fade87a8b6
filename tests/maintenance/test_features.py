"""Window features, condition normalisation, physics features and targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.maintenance import (
    ConditionNormalizer,
    RunFeatures,
    ai4i_features,
    failure_within,
    last_rows,
    piecewise_rul,
    rul_from_history,
    strain,
    window_features,
)

from .synth import engines


def _brute(x: np.ndarray, t: np.ndarray, w: int) -> dict[str, float]:
    """The statistics of the window ending at the last element, by plain numpy."""
    xs, ts = x[-w:], t[-w:]
    slope = np.polyfit(ts, xs, 1)[0] if len(xs) > 1 else 0.0
    return {"mean": xs.mean(), "std": xs.std(), "slope": slope, "min": xs.min(), "max": xs.max()}


def test_window_stats_match_numpy_per_machine_in_caller_order() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "unit": np.repeat([3, 1, 2], [15, 4, 9]),
            "cycle": np.r_[np.arange(1, 16), np.arange(1, 5), np.arange(2, 20, 2)],
            "a": rng.normal(size=28).cumsum(),
            "b": rng.normal(size=28),
        }
    ).sample(frac=1.0, random_state=1)  # shuffled rows: output must follow them
    out = window_features(frame, ["a", "b"], [3, 7])
    assert list(out.index) == list(frame.index)
    for idx in frame.index[:12]:
        row = frame.loc[idx]
        hist = frame[(frame.unit == row.unit) & (frame.cycle <= row.cycle)].sort_values("cycle")
        for w in (3, 7):
            want = _brute(hist["a"].to_numpy(), hist["cycle"].to_numpy(float), w)
            for stat, value in want.items():
                assert out.loc[idx, f"a_{stat}_{w}"] == pytest.approx(value, abs=1e-9)
        assert out.loc[idx, "a_last"] == row.a
        if len(hist) > 1:
            dt = hist["cycle"].iloc[-1] - hist["cycle"].iloc[-2]
            assert out.loc[idx, "a_roc"] == pytest.approx((hist.a.iloc[-1] - hist.a.iloc[-2]) / dt)
        else:
            assert out.loc[idx, "a_roc"] == 0.0


def test_time_windows_use_timestamps() -> None:
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta([0, 60, 120, 600, 660], unit="s")
    frame = pd.DataFrame({"m": "pump", "ts": times, "temp": [1.0, 2.0, 3.0, 10.0, 11.0]})
    out = window_features(frame, ["temp"], ["5min"], group="m", order="ts")
    assert out["temp_mean_5min"].tolist() == [1.0, 1.5, 2.0, 10.0, 10.5]
    assert out["temp_slope_5min"].iloc[2] == pytest.approx(1.0 / 60)  # per second
    assert out["temp_roc"].iloc[3] == pytest.approx(7.0 / 480)


def test_window_feature_errors() -> None:
    frame = pd.DataFrame({"unit": [1], "cycle": [1], "s": [1.0]})
    with pytest.raises(ConfigError, match="not in the frame"):
        window_features(frame, ["nope"])
    with pytest.raises(ConfigError, match="stats"):
        window_features(frame, ["s"], stats=["median"])
    with pytest.raises(ConfigError, match="windows"):
        window_features(frame, ["s"], [0])


def test_last_rows_is_each_machines_latest() -> None:
    frame = pd.DataFrame({"unit": [2, 1, 1, 2], "cycle": [5, 1, 2, 3]})
    assert last_rows(frame)[["unit", "cycle"]].values.tolist() == [[1, 2], [2, 5]]


def test_condition_normalizer_finds_clusters_and_standardises_each() -> None:
    frame = engines(8, seed=4, conditions=3)
    cols = ["op1", "op2", "op3", *[f"s{i}" for i in range(1, 22)]]
    norm = ConditionNormalizer(n_conditions=3).fit(frame[cols])
    labels = norm.conditions(frame[cols].to_numpy())
    assert len(np.unique(labels)) == 3
    # one cluster per distinct operating point
    assert pd.crosstab(labels, frame["op1"]).astype(bool).sum(axis=1).eq(1).all()
    z = norm.transform(frame[cols])
    assert list(norm.get_feature_names_out()) == [f"s{i}" for i in range(1, 22)]
    for c in range(3):
        assert np.allclose(z[labels == c, :15].mean(axis=0), 0.0, atol=1e-9)
    assert np.all(z[:, 15:] == 0.0)  # constant sensors map to 0, not NaN
    with pytest.raises(ConfigError, match="setting 'zz'"):
        ConditionNormalizer(settings=["zz"]).fit(frame[cols])


def test_run_features_drop_dead_sensors_and_add_age() -> None:
    frame = engines(4, seed=5)
    rf = RunFeatures(windows=[5]).fit(frame)
    assert rf.sensors_ == [f"s{i}" for i in range(1, 16)]
    out = rf.transform(frame)
    assert out["age"].tolist() == frame["cycle"].astype(float).tolist()
    assert len(out.columns) == 15 * 2 + 15 * 5 + 1
    with pytest.raises(ConfigError, match="not fitted"):
        RunFeatures().transform(frame)


def test_targets() -> None:
    frame = pd.DataFrame({"unit": [1, 1, 1, 2], "cycle": [1, 2, 3, 7]})
    assert rul_from_history(frame).tolist() == [2.0, 1.0, 0.0, 0.0]
    assert piecewise_rul([200, 50], cap=125).tolist() == [125.0, 50.0]
    assert piecewise_rul([200], cap=None).tolist() == [200.0]
    assert failure_within([10, 31], horizon=30).tolist() == [1, 0]
    with pytest.raises(ConfigError):
        piecewise_rul([1], cap=0)
    with pytest.raises(ConfigError):
        failure_within([1], horizon=-1)


def test_physics_features() -> None:
    raw = pd.DataFrame(
        {
            "Type": ["L", "H"],
            "Air temperature [K]": [300.0, 300.0],
            "Process temperature [K]": [308.6, 311.0],
            "Rotational speed [rpm]": [1000.0, 3000.0],
            "Torque [Nm]": [30.0, 40.0],
            "Tool wear [min]": [200.0, 0.0],
        }
    )
    out = ai4i_features(raw)
    assert out["temperature difference [K]"].tolist() == [8.6, 11.0]
    assert out["power [W]"].round(1).tolist() == [3141.6, 12566.4]
    assert out["strain"].tolist() == [200 * 30 / 11000, 0.0]
    assert out["type"].tolist() == [0.0, 2.0]
    with pytest.raises(InvalidData, match="product type"):
        strain([1.0], [1.0], ["Q"])


@pytest.mark.parametrize(("windows", "as_time"), [((3, 10, 50), False), (("30min", "2h"), True)])
def test_last_only_gives_each_machines_latest_row_of_the_full_features(
    windows: tuple[int | str, ...], as_time: bool
) -> None:
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame({
        "unit": rng.integers(0, 40, n), "cycle": np.arange(n),
        "a": rng.normal(size=n), "b": rng.normal(size=n),
    })  # fmt: skip
    frame.index = frame.index * 3 + 7  # labels that are not positions
    if as_time:
        frame["cycle"] = pd.to_datetime(frame["cycle"] * 60, unit="s")
    full = window_features(frame, ["a", "b"], windows)
    last = window_features(frame, ["a", "b"], windows, last_only=True)
    assert sorted(last.index) == sorted(last_rows(frame).index)
    assert list(last.columns) == list(full.columns)
    np.testing.assert_allclose(last.to_numpy(), full.loc[last.index].to_numpy(), atol=1e-12)


def test_run_features_last_only_matches_the_full_transform() -> None:
    train = engines(6, seed=2)
    rf = RunFeatures(windows=[5, 20]).fit(train)
    full, last = rf.transform(train), rf.transform(train, last_only=True)
    assert len(last) == train["unit"].nunique()
    np.testing.assert_allclose(last.to_numpy(), full.loc[last.index].to_numpy(), atol=1e-12)
