"""``iotml cluster fit | assign | evaluate`` end to end on small files written by the tests."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from iotml.cli import app
from iotml.clustering.tracks import Track

from .movers import make_movers

runner = CliRunner()
_M_PER_DEG = 111_195.0  # metres per degree of latitude (mean Earth radius)
_LAT0, _LON0 = -10.9, -37.06  # Aracaju, where go_track was recorded
FIT = ("--seeds", "3", "--k-range", "2,4")


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.output


# -- files in the three formats -------------------------------------------------------------


def write_go_track(folder: Path) -> tuple[Path, Path, int]:
    """Runners labelled car and stop-and-go vehicles labelled bus, as go_track CSVs, with
    three malformed rows; returns the two paths and the number of good trackpoint rows."""
    tracks, groups = make_movers(6, seed=2)
    rng = np.random.default_rng(2)
    start = datetime(2014, 9, 13, 6, tzinfo=UTC)
    kinds, points = ["id,id_android,car_or_bus"], ["latitude,longitude,track_id,time"]
    for track, group in zip(tracks, groups.tolist(), strict=True):
        if group == 0:
            continue  # walkers: go_track has cars and buses only
        kinds.append(f"{track.id},0,{group}")  # 1 = car, 2 = bus
        begin = start + timedelta(hours=float(rng.uniform(0, 12)))
        lat = _LAT0 + track.y / _M_PER_DEG
        lon = _LON0 + track.x / (_M_PER_DEG * math.cos(math.radians(_LAT0)))
        for t, la, lo in zip(track.t.tolist(), lat.tolist(), lon.tolist(), strict=True):
            when = (begin + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")
            points.append(f"{la:.9f},{lo:.9f},{track.id},{when}")
    good = len(points) - 1
    kinds.append("m99,0,3")
    points += ["north,-37.0,m6,2014-09-13 08:00:00", "-10.9,-37.0"]
    tracks_csv, points_csv = folder / "go_track_tracks.csv", folder / "go_track_trackspoints.csv"
    tracks_csv.write_text("\n".join(kinds) + "\n")
    points_csv.write_text("\n".join(points) + "\n")
    return tracks_csv, points_csv, good


def write_eth_ucy(path: Path, tracks: list[Track]) -> Path:
    """``frame id x y`` lines at 2.5 annotations per second, ten frames apart, frame-sorted,
    and one malformed line at the end."""
    rows = []
    for pid, track in enumerate(tracks, start=1):
        t = np.arange(0.0, track.t[-1], 0.4)
        x, y = np.interp(t, track.t, track.x), np.interp(t, track.t, track.y)
        rows += [(round(s * 25), pid, a, b) for s, a, b in zip(t, x, y, strict=True)]
    rows.sort(key=lambda row: (row[0], row[1]))
    lines = [f"{f:.1f}\t{p:.1f}\t{a:.3f}\t{b:.3f}" for f, p, a, b in rows]
    path.write_text("\n".join([*lines, "10 1 2.5"]) + "\n")
    return path


def write_household(path: Path, n_days: int = 30) -> tuple[Path, int, int]:
    """Hourly household power, evening peaks on even days and morning peaks on odd ones,
    with two malformed rows; returns the path and the lines of the malformed rows."""
    rng = np.random.default_rng(4)
    start = datetime(2024, 1, 1)
    lines = ["Datetime,Global_active_power,Voltage"]
    for hour in range(24 * n_days):
        peak = 19 if (hour // 24) % 2 == 0 else 7
        power = (4.0 if hour % 24 == peak else 1.0) + rng.normal(0, 0.2)
        when = start + timedelta(hours=hour)
        lines.append(f"{when:%Y-%m-%d %H:%M:%S},{power:.4f},{rng.normal(235, 2):.2f}")
        if hour == 50:
            lines.append("yesterday,1.0,235.0")
            bad_time = len(lines)
        if hour == 60:
            lines.append(f"{when:%Y-%m-%d %H}:30:00,n/a,235.0")
            bad_value = len(lines)
    path.write_text("\n".join(lines) + "\n")
    return path, bad_time, bad_value


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    tracks_csv, points_csv, _ = write_go_track(root)
    movers, _ = make_movers(6, seed=3)
    eth = write_eth_ucy(root / "crowd.txt", movers[:12])  # walkers and runners
    power, _, _ = write_household(root / "power.csv")
    return {"tracks": tracks_csv, "points": points_csv, "eth": eth, "power": power}


def _go(files: dict[str, Path]) -> tuple[str, ...]:
    return ("--go-track", str(files["tracks"]), str(files["points"]))


# -- tracks ---------------------------------------------------------------------------------


def test_go_track_fit_reports_bad_rows_and_ari_then_assigns(tmp_path: Path) -> None:
    tracks_csv, points_csv, good = write_go_track(tmp_path)
    go = ("--go-track", str(tracks_csv), str(points_csv))
    home = tmp_path / "home"
    code, out, everything = _cli(home, "cluster", "fit", "--name", "modes", *go, "--k", "2",
                                 *FIT, "--json")  # fmt: skip
    assert code == 0, everything
    body = orjson.loads(out)
    assert body["model"] == "modes@1.0.0"
    assert (body["kind"], body["k"], body["rows"], body["skipped"]) == ("tracks", 2, 12, 0)
    assert body["ari"] >= 0.9
    assert body["bad_rows"] == 3
    assert "hour_sin" in body["features"]  # GPS tracks carry a wall clock
    assert sum(p["size"] for p in body["profiles"]) == 12
    assert f"{points_csv}: 2 malformed rows" in everything
    assert f"{points_csv}:{good + 2}: latitude 'north' is not a number" in everything
    assert f"{points_csv}:{good + 3}: expected 4 fields, got 2" in everything
    assert f"{tracks_csv}:14: car_or_bus '3' is not 1 or 2" in everything

    code, out, everything = _cli(home, "cluster", "assign", "modes@1.0.0", *go, "--json")
    assert code == 0, everything
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["track_id"] for r in rows] == [f"m{i}" for i in range(6, 18)]
    assert set(rows[0]) == {"track_id", "label", "cluster", "description", "distance"}
    sizes = Counter(r["cluster"] for r in rows)
    assert sizes == {p["cluster"]: p["size"] for p in body["profiles"]}
    words = {p["cluster"]: p["description"] for p in body["profiles"]}
    assert all(r["description"] == words[r["cluster"]] for r in rows)

    code, out, _ = _cli(home, "cluster", "assign", "modes", *go)
    assert code == 0
    assert "12 assigned by modes@1.0.0" in out
    for suffix, read in ((".csv", pcsv.read_csv), (".parquet", pq.read_table)):
        target = tmp_path / f"assigned{suffix}"
        code, out, everything = _cli(home, "cluster", "assign", "modes", *go, "--out",
                                     str(target), "--json")  # fmt: skip
        assert code == 0, everything
        assert orjson.loads(out)["rows"] == 12
        table = read(target)
        assert table.num_rows == 12
        assert sorted(Counter(table["cluster"].to_pylist()).items()) == sorted(sizes.items())


def test_evaluate_gives_the_figures_and_a_crosstab_without_saving(
    files: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    args = ("cluster", "evaluate", *_go(files), "--k", "2", *FIT)
    code, out, everything = _cli(home, *args, "--json")
    assert code == 0, everything
    body = orjson.loads(out)
    assert body["k"] == 2
    assert body["ari"] >= 0.9
    crosstab = body["crosstab"]
    assert [row["cluster"] for row in crosstab] == [0, 1]
    assert sum(row["bus"] for row in crosstab) == sum(row["car"] for row in crosstab) == 6
    assert max(row["bus"] for row in crosstab) >= 5  # the buses share a cluster
    assert not (home / "models").exists()
    code, out, _ = _cli(home, *args)
    assert code == 0
    assert "tracks per cluster and label" in out
    assert f"adjusted Rand index against the tracks' labels: {body['ari']:.3f}" in out
    assert "choosing k" in out


def test_eth_ucy_fit_draws_the_pictures(files: dict[str, Path], tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    code, out, everything = _cli(tmp_path / "home", "cluster", "fit", "--name", "crowd",
                                 "--eth-ucy", str(files["eth"]), "--k", "2", *FIT,
                                 "--plots", str(plots))  # fmt: skip
    assert code == 0, everything
    assert f"{files['eth']}:" in everything
    assert "expected 4 fields (frame id x y), got 3" in everything
    assert "saved crowd@1.0.0: 12 tracks" in out
    assert "choosing k" in out
    for name in ("selection.png", "centroids.png", "tracks.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"wrote {plots / name}" in out


# -- meter days -----------------------------------------------------------------------------


def test_household_days_are_fitted_and_assigned_with_bad_rows_reported(tmp_path: Path) -> None:
    power, bad_time, bad_value = write_household(tmp_path / "power.csv")
    home = tmp_path / "home"
    code, out, everything = _cli(home, "cluster", "fit", "--name", "power", "--household",
                                 str(power), *FIT, "--json")  # fmt: skip
    assert code == 0, everything
    body = orjson.loads(out)
    assert (body["kind"], body["k"], body["rows"], body["skipped"]) == ("profiles", 2, 30, 0)
    assert body["bad_rows"] == 2
    assert body["ari"] is None
    assert sorted(p["description"] for p in body["profiles"]) == ["evening peak", "morning peak"]
    assert f"{power}:{bad_time}: time 'yesterday' is not" in everything
    assert f"{power}:{bad_value}: value 'n/a' is not a number" in everything

    code, out, everything = _cli(home, "cluster", "assign", "power", "--household", str(power),
                                 "--json")  # fmt: skip
    assert code == 0, everything
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["day"] for r in rows[:2]] == ["2024-01-01", "2024-01-02"]
    words = [r["description"] for r in rows]
    assert words[::2] == ["evening peak"] * 15
    assert words[1::2] == ["morning peak"] * 15

    code, out, everything = _cli(home, "cluster", "evaluate", "--household", str(power),
                                 "--channel", "Voltage", *FIT, "--json")  # fmt: skip
    assert code == 0, everything
    assert orjson.loads(out)["crosstab"] is None


def test_a_model_given_the_other_kind_of_data_is_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    power = ("--household", str(files["power"]))
    for name, data in (("power", power), ("crowd", ("--eth-ucy", str(files["eth"])))):
        code, _, everything = _cli(home, "cluster", "fit", "--name", name, *data, "--k", "2",
                                   *FIT)  # fmt: skip
        assert code == 0, everything
    code, _, everything = _cli(home, "cluster", "assign", "power", *_go(files))
    assert code == 1
    assert "error: model power@1.0.0 groups profiles, but --go-track gives tracks" in everything
    assert "Traceback" not in everything
    code, _, everything = _cli(home, "cluster", "assign", "crowd", *power)
    assert code == 1
    assert "groups tracks, but --household gives meter days" in everything


def test_tampered_model_and_bad_options_give_one_error_line(
    files: dict[str, Path], tmp_path: Path
) -> None:
    home, eth = tmp_path / "home", ("--eth-ucy", str(files["eth"]))
    code, _, everything = _cli(home, "cluster", "fit", "--name", "crowd", *eth, "--k", "2", *FIT)
    assert code == 0, everything
    pickled = home / "models" / "crowd" / "1.0.0" / "clusters.joblib"
    data = bytearray(pickled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    refused = {
        ("assign", "crowd", *eth): "the file was altered",
        ("assign", "nobody", *eth): "'nobody'",
        ("fit", "--name", "crowd", *eth): "already has version '1.0.0'",
        ("evaluate",): "expected exactly one of --go-track, --eth-ucy or --household",
        ("evaluate", *eth, "--household", str(files["power"])): "given by --eth-ucy, --household",
        ("evaluate", *eth, "--mode", "--features", "speed_mean"): "give one of them",
        ("evaluate", *eth, "--features", "speed_mean,warp"): "are not all tracks features",
        ("evaluate", "--household", str(files["power"]), "--mode"): "not all profiles features",
        ("evaluate", *eth, "--k-range", "2-8"): "expected LO,HI such as 2,8",
        ("evaluate", *eth, "--scale", "minmax"): "scale is 'minmax'",
        ("evaluate", "--eth-ucy", str(tmp_path / "none.txt")): "cannot read ETH/UCY file",
        ("evaluate", "--household", str(files["power"]), "--channel", "x"): "channel is 'x'",
        ("assign", "crowd", *eth, "--out", str(tmp_path / "a.txt")): "not a .csv or .parquet",
    }
    for args, message in refused.items():
        code, _, everything = _cli(home, "cluster", *args)
        assert code == 1, (args, everything)
        assert everything.count("error:") == 1, (args, everything)
        assert message in everything, (args, everything)
        assert "Traceback" not in everything
