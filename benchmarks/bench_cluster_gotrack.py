"""go_track: do k-means clusters of trajectory features recover car versus bus?

    python benchmarks/bench_cluster_gotrack.py                 # ~1 min, one core
    python benchmarks/bench_cluster_gotrack.py --json benchmarks/results/cluster-gotrack.json

Data: ``$IOTML_DATA/gps_go_track`` (default ``../shared/data``): ``go_track_tracks.csv``
(163 tracks; ``car_or_bus`` 1 = car, 2 = bus, the label; also the file's own summary
columns ``speed``, ``distance``, ``time``) and ``go_track_trackspoints.csv``, read with
:func:`iotml.clustering.read_go_track`. Features come from the trackpoints
(:func:`iotml.clustering.trajectory_features`); a track with fewer than 3 valid points is
skipped, and the count is reported.

Protocol, fixed before the runs: every configuration is clustered on three subsets of the
tracks independently — ``dev`` (even track id), ``held-out`` (odd track id) and ``all`` —
both with k = 2 (the label has two classes) and with k chosen by the best mean silhouette
over k = 2 … 8. Reported per fit: the adjusted Rand index (ARI) against car/bus, the
silhouette, the stability (mean pairwise ARI between the fits of 10 seeds) and the cluster
sizes with their car/bus counts. The labels are used only to score.

Configurations: baselines k-means (standard scaling) on the file's ``speed`` column (on
all 163 tracks, and on the 141 tracks the features can measure), on the file's ``speed``,
``distance``, ``time`` (the same two ways), and on our ``speed_mean`` alone; then all 19
trajectory features with robust, standard and quantile scaling; then
:data:`iotml.clustering.MODE_FEATURES` with standard scaling (the pre-declared choice,
picked by looking at the labels of the dev half only) and with quantile scaling (added
after the held-out half had been seen: exploratory). Only the pre-declared configuration
at k = 2 on the held-out half is a clean estimate; every other figure is exploratory.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import adjusted_rand_score

from cluster_bench_common import SEED, SEEDS, data_root, machine_info, summary, write_json
from iotml.clustering import (
    FEATURE_NAMES,
    MODE_FEATURES,
    BehaviourClusters,
    read_go_track,
    trajectory_features,
)

Scale = Literal["robust", "standard", "quantile"]
SUBSETS = ("dev", "held-out", "all")
FILE_LABELS = {"1": "car", "2": "bus"}
PRE_DECLARED = "MODE_FEATURES, standard"


@dataclass(frozen=True)
class Data:
    """One configuration's rows: features, their names, track ids and car/bus labels."""

    name: str
    scale: Scale
    matrix: npt.NDArray[np.float64]
    names: tuple[str, ...]
    ids: list[str]
    labels: list[str]


def _file_columns(path: Path) -> tuple[list[str], list[str], npt.NDArray[np.float64]]:
    """Track ids, labels and the file's (speed, distance, time) columns."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    labels = [FILE_LABELS[r["car_or_bus"]] for r in rows]
    summary_cols = np.array([[float(r[c]) for c in ("speed", "distance", "time")] for r in rows])
    return ids, labels, summary_cols


def _subset(ids: Sequence[str], which: str) -> npt.NDArray[np.bool_]:
    even = np.array([int(i) % 2 == 0 for i in ids])
    return {"dev": even, "held-out": ~even, "all": np.ones(len(ids), dtype=bool)}[which]


def _fit(data: Data, rows: npt.NDArray[np.bool_], k: int | None) -> dict[str, Any]:
    k_range = (2, 2) if k == 2 else (2, 8)
    bc = BehaviourClusters(k=k, k_range=k_range, seeds=SEEDS, scale=data.scale, seed=SEED)
    bc.fit(data.matrix[rows], data.names)
    truth = np.array(data.labels)[rows]
    table: list[dict[str, Any]] = []
    for c in range(bc.k_):
        car = int(np.sum((bc.labels_ == c) & (truth == "car")))
        bus = int(np.sum((bc.labels_ == c) & (truth == "bus")))
        table.append({"cluster": c, "car": car, "bus": bus, "bus_share": bus / (car + bus)})
    return {
        "tracks": int(rows.sum()),
        "ari": float(adjusted_rand_score(truth, bc.labels_)),
        **summary(bc),
        "crosstab": table,
    }


def _configs(root: Path) -> tuple[list[Data], dict[str, Any]]:
    folder = root / "gps_go_track"
    file_ids, file_labels, file_cols = _file_columns(folder / "go_track_tracks.csv")
    tracks = read_go_track(folder / "go_track_tracks.csv", folder / "go_track_trackspoints.csv")
    feats = trajectory_features(tracks.tracks)
    ids = feats.track_ids
    labels = [str(tracks.tracks[int(p)].label) for p in feats.positions]
    where = [file_ids.index(i) for i in ids]
    info = {
        "tracks_in_file": len(file_ids),
        "tracks_with_points": len(tracks.tracks),
        "measurable": len(ids),
        "skipped": len(feats.skipped),
        "skipped_reasons": feats.skipped,
        "bad_rows": [str(b) for b in tracks.bad],
        "labels_all": {c: file_labels.count(c) for c in ("car", "bus")},
        "labels_measurable": {c: labels.count(c) for c in ("car", "bus")},
    }
    speed = ("speed",)
    configs = [
        Data("file speed (all 163)", "standard", file_cols[:, :1], speed, file_ids, file_labels),
        Data("file speed (measurable)", "standard", file_cols[where, :1], speed, ids, labels),
    ]
    three = ("speed", "distance", "time")
    configs += [
        Data(
            "file speed, distance, time (all 163)",
            "standard",
            file_cols,
            three,
            file_ids,
            file_labels,
        ),
        Data(
            "file speed, distance, time (measurable)",
            "standard",
            file_cols[where],
            three,
            ids,
            labels,
        ),
    ]
    mean = feats.select(["speed_mean"])
    configs.append(Data("our speed_mean", "standard", mean.matrix, mean.names, ids, labels))
    scales: tuple[Scale, ...] = ("robust", "standard", "quantile")
    configs += [Data(f"all 19, {s}", s, feats.matrix, FEATURE_NAMES, ids, labels) for s in scales]
    mode = feats.select(list(MODE_FEATURES))
    configs += [
        Data(f"MODE_FEATURES, {s}", s, mode.matrix, mode.names, ids, labels)
        for s in ("standard", "quantile")
    ]
    return configs, info


def _print(name: str, subset: str, fixed: dict[str, Any], chosen: dict[str, Any]) -> None:
    print(
        f"{name:38} {subset:8} n={fixed['tracks']:3}  k=2: ARI {fixed['ari']:6.3f} "
        f"sil {fixed['silhouette']:.3f} stab {fixed['stability']:.3f} sizes {fixed['sizes']}  "
        f"| best k={chosen['k']}: ARI {chosen['ari']:6.3f} sil {chosen['silhouette']:.3f} "
        f"stab {chosen['stability']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = machine_info()
    start = time.perf_counter()
    configs, info = _configs(data_root(args.data))
    print(
        f"go_track: {info['tracks_in_file']} tracks in the file, {info['measurable']} measurable "
        f"({info['skipped']} skipped: fewer than 3 valid points), {len(info['bad_rows'])} bad rows"
    )
    runs: list[dict[str, Any]] = []
    for data in configs:
        for subset in SUBSETS:
            rows = _subset(data.ids, subset)
            fixed, chosen = _fit(data, rows, 2), _fit(data, rows, None)
            _print(data.name, subset, fixed, chosen)
            runs.append({"config": data.name, "subset": subset, "k2": fixed, "best_k": chosen})
    headline = next(r for r in runs if r["config"] == PRE_DECLARED and r["subset"] == "held-out")
    met = headline["k2"]["ari"] >= 0.40
    print(
        f"pre-declared ({PRE_DECLARED}, k=2) held-out ARI {headline['k2']['ari']:.3f}: "
        f"target >= 0.40 {'met' if met else 'missed'}"
    )
    described = next(
        r for r in runs if r["config"] == "MODE_FEATURES, quantile" and r["subset"] == "all"
    )
    for row, words in zip(described["k2"]["crosstab"], described["k2"]["words"], strict=True):
        print(
            f"  MODE_FEATURES+quantile, all, cluster {row['cluster']}: {words!r}: "
            f"car {row['car']}, bus {row['bus']} (bus share {row['bus_share']:.2f})"
        )
    report.update(
        data=info,
        runs=runs,
        headline={"config": PRE_DECLARED, "subset": "held-out", "k": 2, "target_met": met},
        wall_s=time.perf_counter() - start,
    )
    write_json(args.json, report)
    print(f"wall {report['wall_s']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
