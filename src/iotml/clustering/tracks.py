"""Movement tracks and their loaders: go_track GPS CSVs and ETH/UCY ``frame id x y`` files.

A :class:`Track` is one mover's time-ordered positions, either GPS degrees or planar metres.
Loaders take any file of their format by path and never stop at a bad row: every row they
reject (or reorder) is listed in :attr:`TrackSet.bad` with its file and line number. Only a
file that cannot be read at all raises :class:`iotml.errors.InvalidData`.

>>> import numpy as np
>>> track = Track("a", t=np.array([0.0, 1.0]), x=np.array([0.0, 1.5]), y=np.zeros(2), planar=True)
>>> len(track), track.planar
(2, True)
"""

from __future__ import annotations

__all__ = ["BadRow", "Track", "TrackSet", "read_eth_ucy", "read_go_track"]

import csv
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from iotml.errors import InvalidData
from iotml.types import BadRow

FloatArray = npt.NDArray[np.float64]

_GO_TRACK_LABELS = {"1": "car", "2": "bus"}
_ETH_FIELDS = ("frame", "id", "x", "y")


@dataclass(frozen=True, eq=False)
class Track:
    """One mover's positions over time.

    Parameters
    ----------
    id : str
        Track identifier, unique within a :class:`TrackSet`.
    t : array of float
        Timestamps in seconds. With ``clock`` they are wall-clock seconds since
        1970-01-01 as written in the file (local time, no zone conversion).
    x, y : array of float
        Metres east/north when ``planar``; otherwise longitude and latitude in degrees.
    planar : bool
        Whether ``x``/``y`` are metres (True) or longitude/latitude degrees (False).
    label : str or None
        Ground-truth group when the data has one (go_track: ``"car"`` or ``"bus"``).
    clock : bool
        Whether ``t`` carries a wall clock, so time of day and weekday mean something.
    """

    id: str
    t: FloatArray
    x: FloatArray
    y: FloatArray
    planar: bool
    label: str | None = None
    clock: bool = False

    def __post_init__(self) -> None:
        for name in ("t", "x", "y"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        if not (self.t.ndim == self.x.ndim == self.y.ndim == 1):
            raise InvalidData(f"track {self.id!r}: t, x and y must be 1-D arrays")
        if not (len(self.t) == len(self.x) == len(self.y)):
            raise InvalidData(
                f"track {self.id!r}: t, x, y lengths differ "
                f"({len(self.t)}, {len(self.x)}, {len(self.y)}); expected equal lengths"
            )

    def __len__(self) -> int:
        return len(self.t)

    @property
    def lat(self) -> FloatArray:
        """Latitude in degrees (GPS tracks only)."""
        self._need_gps("lat")
        return self.y

    @property
    def lon(self) -> FloatArray:
        """Longitude in degrees (GPS tracks only)."""
        self._need_gps("lon")
        return self.x

    def _need_gps(self, name: str) -> None:
        if self.planar:
            raise InvalidData(f"track {self.id!r} is planar (x/y metres); it has no {name}")


@dataclass
class TrackSet:
    """Tracks read from files, with every malformed row reported in ``bad``."""

    tracks: list[Track]
    bad: list[BadRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)


# (t, x, y, line) rows collected per track before sorting
_Rows = list[tuple[float, float, float, int]]


def _open_rows(path: Path, what: str) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InvalidData(f"cannot read {what} file {str(path)!r}: {err}") from err


def _header_index(header: list[str], need: tuple[str, ...], path: Path) -> dict[str, int]:
    names = [h.strip().strip('"').lower() for h in header]
    missing = [n for n in need if n not in names]
    if missing:
        raise InvalidData(
            f"{str(path)!r}: header lacks columns {missing}; expected {list(need)}, got {names}"
        )
    return {n: names.index(n) for n in need}


def _finite(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not finite")
    return value


def _seconds(text: str) -> float:
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"time {text!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
    # keep the wall clock as written: hour of day must be local to where the track was made
    return stamp.replace(tzinfo=UTC).timestamp()


def _assemble(
    rows: _Rows, path: str, track_id: str
) -> tuple[FloatArray, FloatArray, FloatArray, list[BadRow]]:
    """Sort one track's rows by time; report rows out of order and drop duplicate times."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    t, line = arr[:, 0], arr[:, 3].astype(np.int64)
    bad: list[BadRow] = []
    if len(t) > 1:
        backwards = np.flatnonzero(t[1:] < np.maximum.accumulate(t)[:-1]) + 1
        bad += [
            BadRow(path, int(line[i]), f"track {track_id}: time goes backwards; row kept, sorted")
            for i in backwards
        ]
    order = np.argsort(t, kind="stable")
    arr = arr[order]
    dup = np.zeros(len(arr), dtype=bool)
    dup[1:] = arr[1:, 0] == arr[:-1, 0]
    bad += [
        BadRow(path, int(arr[i, 3]), f"track {track_id}: duplicate time {arr[i, 0]:.3f}; dropped")
        for i in np.flatnonzero(dup)
    ]
    keep = arr[~dup]
    return keep[:, 0].copy(), keep[:, 1].copy(), keep[:, 2].copy(), bad


def _go_track_labels(path: Path, bad: list[BadRow]) -> dict[str, str | None]:
    rows = _open_rows(path, "go_track tracks")
    if not rows:
        raise InvalidData(f"go_track tracks file {str(path)!r} is empty; expected a header row")
    col = _header_index(rows[0], ("id", "car_or_bus"), path)
    labels: dict[str, str | None] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            bad.append(BadRow(str(path), line, f"expected {len(rows[0])} fields, got {len(row)}"))
            continue
        track_id, kind = row[col["id"]].strip(), row[col["car_or_bus"]].strip()
        labels[track_id] = _GO_TRACK_LABELS.get(kind)
        if labels[track_id] is None:
            bad.append(BadRow(str(path), line, f"car_or_bus {kind!r} is not 1 or 2; no label"))
    return labels


def _go_track_point(row: list[str], col: dict[str, int]) -> tuple[str, float, float, float]:
    lat = _finite(row[col["latitude"]], "latitude")
    lon = _finite(row[col["longitude"]], "longitude")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat!r} outside [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon!r} outside [-180, 180]")
    track_id = row[col["track_id"]].strip()
    if not track_id:
        raise ValueError("track_id is empty")
    return track_id, _seconds(row[col["time"]]), lon, lat


def read_go_track(tracks_csv: str | Path, points_csv: str | Path) -> TrackSet:
    """Read go_track GPS tracks: a per-track CSV (labels) and a trackpoints CSV.

    Only ``id`` and ``car_or_bus`` (1 = car, 2 = bus) are taken from ``tracks_csv``; its
    summary columns (speed, time, distance) are ignored so features come from the points.
    Points (``latitude, longitude, track_id, time``) are grouped by track and sorted by time.

    Raises
    ------
    InvalidData
        If either file is missing, unreadable, or lacks the required header columns.
    """
    tracks_path, points_path = Path(tracks_csv), Path(points_csv)
    bad: list[BadRow] = []
    labels = _go_track_labels(tracks_path, bad)
    rows = _open_rows(points_path, "go_track trackpoints")
    if not rows:
        raise InvalidData(f"trackpoints file {str(points_path)!r} is empty; expected a header")
    col = _header_index(rows[0], ("latitude", "longitude", "track_id", "time"), points_path)
    per_track: dict[str, _Rows] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            bad.append(
                BadRow(str(points_path), line, f"expected {len(rows[0])} fields, got {len(row)}")
            )
            continue
        try:
            track_id, t, lon, lat = _go_track_point(row, col)
        except ValueError as err:
            bad.append(BadRow(str(points_path), line, str(err)))
            continue
        per_track.setdefault(track_id, []).append((t, lon, lat, line))
    tracks = []
    for track_id, track_rows in per_track.items():
        t_s, lon_d, lat_d, track_bad = _assemble(track_rows, str(points_path), track_id)
        bad += track_bad
        label = labels.get(track_id)
        tracks.append(Track(track_id, t_s, lon_d, lat_d, False, label, clock=True))
    return TrackSet(tracks, bad)


def _id_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _frame_step(per_track: dict[str, _Rows]) -> float:
    """The most common positive frame difference within tracks (1 if none)."""
    steps: Counter[float] = Counter()
    for rows in per_track.values():
        frames = np.sort(np.array([r[0] for r in rows]))
        diffs = np.diff(frames)
        steps.update(diffs[diffs > 0].tolist())
    return steps.most_common(1)[0][0] if steps else 1.0


def _read_eth_file(path: Path, name: str, fps: float, frame_step: float | None) -> TrackSet:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidData(f"cannot read ETH/UCY file {str(path)!r}: {err}") from err
    bad: list[BadRow] = []
    per_track: dict[str, _Rows] = {}
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            bad.append(
                BadRow(str(path), line_no, f"expected 4 fields (frame id x y), got {len(fields)}")
            )
            continue
        try:
            values = [_finite(v, n) for v, n in zip(fields, _ETH_FIELDS, strict=True)]
        except ValueError as err:
            bad.append(BadRow(str(path), line_no, str(err)))
            continue
        frame, pid, x, y = values
        per_track.setdefault(_id_text(pid), []).append((frame, x, y, line_no))
    step = frame_step if frame_step is not None else _frame_step(per_track)
    tracks = []
    for key, rows in per_track.items():
        frames, xs, ys, track_bad = _assemble(rows, str(path), key)
        bad += track_bad
        tracks.append(Track(f"{name}:{key}", frames / step / fps, xs, ys, planar=True))
    return TrackSet(tracks, bad)


def read_eth_ucy(
    path: str | Path, *, fps: float = 2.5, frame_step: float | None = None
) -> TrackSet:
    """Read ETH/UCY pedestrian tracks from one ``frame id x y`` file or a folder of them.

    Time is ``frame / frame_step / fps`` seconds: annotations are ``fps`` per second and
    consecutive annotations are ``frame_step`` frames apart (10 in the Social-GAN files).
    ``frame_step=None`` takes each file's most common frame difference within a track.
    A folder is read recursively (every ``*.txt``); track ids are ``"<file>:<pedestrian>"``
    with the file relative to the folder, so they stay unique across files.

    Raises
    ------
    InvalidData
        If the path is missing or unreadable, or a folder holds no ``*.txt`` file.
    """
    if fps <= 0 or (frame_step is not None and frame_step <= 0):
        raise InvalidData(
            f"fps and frame_step must be > 0, got fps={fps!r}, frame_step={frame_step!r}"
        )
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*.txt") if p.is_file())
        if not files:
            raise InvalidData(f"folder {str(root)!r} holds no *.txt ETH/UCY file")
        names = [p.relative_to(root).as_posix() for p in files]
    else:
        files, names = [root], [root.name]
    result = TrackSet([], [])
    for file, name in zip(files, names, strict=True):
        part = _read_eth_file(file, name, fps, frame_step)
        result.tracks += part.tracks
        result.bad += part.bad
    return result
