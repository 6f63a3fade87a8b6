"""Loaders for go_track CSVs and ETH/UCY ``frame id x y`` files, on small files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.clustering.tracks import Track, read_eth_ucy, read_go_track
from iotml.errors import InvalidData

TRACKS_CSV = """id,"id_android","speed","time","distance","car_or_bus"
1,0,19.2,0.13,2.6,1
2,0,30.8,0.17,5.2,2
3,0,30.8,0.17,5.2,7
"""

POINTS_CSV = """latitude,longitude,track_id,time
-10.9393,-37.0627,1,2014-09-13 07:24:32
-10.9392,-37.0626,1,2014-09-13 07:24:42
-10.9391,-37.0625,1,2014-09-13 07:24:37
-10.9390,-37.0624,1,2014-09-13 07:24:42
-10.9,-37.0,2,2014-09-14 08:00:00
abc,-37.0,2,2014-09-14 08:00:05
-10.9,-37.0,2
95.0,-37.0,2,2014-09-14 08:00:10
-10.9,nan,2,2014-09-14 08:00:15
-10.9,-37.0,2,yesterday
-10.8,-37.0,3,2014-09-14 08:00:00
"""


def _go_track(tmp_path: Path) -> tuple[Path, Path]:
    tracks, points = tmp_path / "tracks.csv", tmp_path / "points.csv"
    tracks.write_text(TRACKS_CSV)
    points.write_text(POINTS_CSV)
    return tracks, points


def test_go_track_groups_sorts_and_labels(tmp_path: Path) -> None:
    result = read_go_track(*_go_track(tmp_path))
    by_id = {track.id: track for track in result}
    assert sorted(by_id) == ["1", "2", "3"]
    one = by_id["1"]
    assert one.label == "car"
    assert by_id["2"].label == "bus"
    assert by_id["3"].label is None
    assert not one.planar
    assert one.clock
    np.testing.assert_allclose(np.diff(one.t), [5.0, 5.0])  # sorted, duplicate 07:24:42 dropped
    np.testing.assert_allclose(one.lat, [-10.9393, -10.9391, -10.9392])
    np.testing.assert_allclose(one.lon, [-37.0627, -37.0625, -37.0626])


def test_go_track_reports_malformed_rows_with_line_numbers(tmp_path: Path) -> None:
    tracks_path, points_path = _go_track(tmp_path)
    result = read_go_track(tracks_path, points_path)
    lines = {(Path(b.path).name, b.line): b.reason for b in result.bad}
    assert "not 1 or 2" in lines[("tracks.csv", 4)]
    assert "time goes backwards" in lines[("points.csv", 4)]
    assert "duplicate time" in lines[("points.csv", 5)]
    assert "not a number" in lines[("points.csv", 7)]
    assert "expected 4 fields, got 3" in lines[("points.csv", 8)]
    assert "outside [-90, 90]" in lines[("points.csv", 9)]
    assert "not finite" in lines[("points.csv", 10)]
    assert "time 'yesterday'" in lines[("points.csv", 11)]
    assert len(result.bad) == 8
    assert str(result.bad[0]).startswith(str(tracks_path))


def test_go_track_missing_file_names_it(tmp_path: Path) -> None:
    tracks_path, _ = _go_track(tmp_path)
    with pytest.raises(InvalidData, match=r"nope\.csv"):
        read_go_track(tracks_path, tmp_path / "nope.csv")


def test_go_track_missing_column_is_invalid(tmp_path: Path) -> None:
    tracks_path, points_path = _go_track(tmp_path)
    points_path.write_text("lat,lon,track_id,time\n1,2,3,2014-01-01 00:00:00\n")
    with pytest.raises(InvalidData, match="latitude"):
        read_go_track(tracks_path, points_path)


ETH = "0.0\t1.0\t1.41\t-5.68\n0.0\t2.0\t0.51\t-6.94\n10.0\t1.0\t1.81\t-5.60\n20.0\t1.0\t2.2\t-5.5\n"


def test_eth_file_times_from_frame_step_and_fps(tmp_path: Path) -> None:
    path = tmp_path / "scene.txt"
    path.write_text(ETH)
    result = read_eth_ucy(path)
    assert result.bad == []
    one = {track.id: track for track in result}["scene.txt:1"]
    assert one.planar
    assert not one.clock
    assert one.label is None
    np.testing.assert_allclose(one.t, [0.0, 0.4, 0.8])  # 10 frames per step at 2.5 fps
    np.testing.assert_allclose(one.x, [1.41, 1.81, 2.2])
    explicit = read_eth_ucy(path, fps=2.5, frame_step=1.0)
    np.testing.assert_allclose(explicit.tracks[0].t, [0.0, 4.0, 8.0])


def test_eth_folder_reads_all_files_with_unique_ids(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "a.txt").write_text(ETH)
    result = read_eth_ucy(tmp_path)
    ids = [track.id for track in result]
    assert len(ids) == len(set(ids)) == 4
    assert "train/a.txt:1" in ids
    assert "val/a.txt:1" in ids


def test_eth_malformed_rows_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(ETH + "30.0 1.0 2.5\n30.0 1.0 x -5\n40.0 1.0 inf 1\n\n20.0 1.0 9 9\n")
    result = read_eth_ucy(path)
    lines = {b.line: b.reason for b in result.bad}
    assert "expected 4 fields" in lines[5]
    assert "not a number" in lines[6]
    assert "not finite" in lines[7]
    assert "duplicate time" in lines[9]
    assert len(result.bad) == 4
    assert len(result.tracks[0]) == 3


@pytest.mark.parametrize("name", ["missing.txt", "emptydir"])
def test_eth_missing_path_or_empty_folder_raises(tmp_path: Path, name: str) -> None:
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InvalidData, match=name):
        read_eth_ucy(tmp_path / name)


def test_track_rejects_unequal_lengths() -> None:
    with pytest.raises(InvalidData, match="lengths differ"):
        Track("x", t=np.arange(3.0), x=np.zeros(2), y=np.zeros(3), planar=True)


def test_planar_track_has_no_latitude() -> None:
    track = Track("x", t=np.arange(3.0), x=np.zeros(3), y=np.zeros(3), planar=True)
    with pytest.raises(InvalidData, match="no lat"):
        _ = track.lat
