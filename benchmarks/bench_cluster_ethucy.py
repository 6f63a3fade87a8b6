"""ETH/UCY pedestrians: k-means behaviour clusters, k by silhouette, stability across seeds.

    python benchmarks/bench_cluster_ethucy.py                  # ~1 min, one core
    python benchmarks/bench_cluster_ethucy.py --json benchmarks/results/cluster-ethucy.json \\
        --plots /tmp/ethucy-plots

Data: ``$IOTML_DATA/eth_ucy/datasets`` (default ``../shared/data``), the Social-GAN layout.
Its five scene folders (eth, hotel, univ, zara1, zara2) each hold the *same* eight
recordings, arranged for leave-one-scene-out: ``test/`` has the left-out scene's complete
recordings, ``train/`` and ``val/`` the other recordings cut in time into ``*_train.txt``
and ``*_val.txt``. Reading every file of every scene folder would count each pedestrian up
to five times, and cut the ones that straddle a train/val boundary in two. So the tracks
are read once, from ``raw/all_data/`` — the eight complete recordings (biwi_eth,
biwi_hotel, crowds_zara01/02/03, students001/003, uni_examples) — with
:func:`iotml.clustering.read_eth_ucy` (2.5 annotations per second, the frame step taken
per file). The script first checks that claim: per recording, the distinct
``frame id x y`` rows of all the scene folders' files equal those of ``raw/all_data``
(reported as ``layout_check``). crowds_zara03 and uni_examples are in every training
split but in no test split; they are clustered with the rest and reported on their own in
the per-recording table.

Protocol, fixed before the runs: features are :data:`iotml.clustering.FEATURE_NAMES`
without the clock ones (``hour_sin``, ``hour_cos``, ``weekend``, ``has_clock``: planar
tracks carry no wall clock), computed per track (pedestrian stop rule: slower than
0.2 m/s for 2 s); a track with fewer than 3 points is skipped and counted.
``BehaviourClusters(k_range=(2, 8), seeds=10, scale="robust", seed=0)`` is the headline;
``standard`` and ``quantile`` scaling are reported beside it. Reported: the chosen k, the
silhouette and inertia per k, the stability (mean pairwise adjusted Rand index between
the fits of seeds 0-9; target >= 0.9) and the profile table. Per recording, the same
robust configuration is fitted on that recording's tracks alone (k, silhouette,
stability). ``--plots DIR`` writes the silhouette/elbow, centroid and track pictures.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cluster_bench_common import SEED, SEEDS, data_root, machine_info, summary, write_json
from iotml.clustering import (
    FEATURE_NAMES,
    BehaviourClusters,
    TrajectoryFeatures,
    read_eth_ucy,
    trajectory_features,
)
from iotml.clustering.plots import plot_centroids, plot_selection, plot_tracks

Scale = Literal["robust", "standard", "quantile"]
SCENES = ("eth", "hotel", "univ", "zara1", "zara2")
CLOCK = ("hour_sin", "hour_cos", "weekend", "has_clock")
FEATURES = tuple(n for n in FEATURE_NAMES if n not in CLOCK)
PROFILE = (
    "speed_mean",
    "speed_p90",
    "straightness",
    "stop_count",
    "dwell_share",
    "turn_rate_per_s",
    "duration_s",
)
SCALES: tuple[Scale, ...] = ("robust", "standard", "quantile")
_PART = re.compile(r"_(train|val)$")


def _rows(path: Path) -> set[tuple[float, ...]]:
    """Distinct ``frame id x y`` rows of one file, parsed as numbers (formats differ)."""
    out: set[tuple[float, ...]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 4:
            out.add(tuple(round(float(v), 6) for v in fields))
    return out


def _layout_check(datasets: Path) -> dict[str, Any]:
    """Per recording: do the scene folders' files hold exactly the rows of raw/all_data?"""
    seen: dict[str, set[tuple[float, ...]]] = {}
    for scene in SCENES:
        for file in sorted((datasets / scene).rglob("*.txt")):
            seen.setdefault(_PART.sub("", file.stem), set()).update(_rows(file))
    recordings = {}
    for file in sorted((datasets / "raw" / "all_data").glob("*.txt")):
        full = _rows(file)
        recordings[file.stem] = {"rows": len(full), "same_rows": full == seen.pop(file.stem, None)}
    return {
        "recordings": recordings,
        "only_in_scene_folders": sorted(seen),
        "passed": not seen and all(r["same_rows"] for r in recordings.values()),
    }


def _profile(bc: BehaviourClusters) -> list[dict[str, Any]]:
    keep = ("cluster", "size", "share", "description", *PROFILE)
    return [{k: row[k] for k in keep} for row in bc.profile_table()]


def _fit(feats: TrajectoryFeatures, scale: Scale) -> BehaviourClusters:
    bc = BehaviourClusters(k_range=(2, 8), seeds=SEEDS, scale=scale, seed=SEED)
    return bc.fit(feats.matrix, feats.names)


def _per_recording(feats: TrajectoryFeatures) -> dict[str, Any]:
    recording = np.array([i.split(":", 1)[0].removesuffix(".txt") for i in feats.track_ids])
    out = {}
    for name in sorted(set(recording.tolist())):
        rows = recording == name
        part = feats._replace(matrix=feats.matrix[rows])
        bc = _fit(part, "robust")
        out[name] = {"tracks": int(rows.sum()), **summary(bc)}
        print(
            f"  {name:15} {int(rows.sum()):4} tracks: k={bc.k_} silhouette "
            f"{bc.silhouette_:.3f} stability {bc.stability_:.3f}"
        )
    return out


def _plots(folder: Path, scale: str, bc: BehaviourClusters, tracks: list[Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plot_selection(bc, folder / f"ethucy-{scale}-selection.png")
    plot_centroids(bc, folder / f"ethucy-{scale}-centroids.png")
    names = [f"{c}: {w}" for c, w in enumerate(bc.describe())]
    recording = [t.id.split(":", 1)[0].removesuffix(".txt") for t in tracks]
    for name in sorted(set(recording)):
        rows = [i for i, r in enumerate(recording) if r == name]
        xy = [(tracks[i].x, tracks[i].y) for i in rows]
        plot_tracks(xy, bc.labels_[rows], folder / f"ethucy-{scale}-tracks-{name}.png", names=names)


def _print(scale: str, bc: BehaviourClusters) -> None:
    curve = ", ".join(f"{k}: {s:.3f}" for k, s in zip(bc.ks_, bc.silhouettes_, strict=True))
    print(
        f"{scale:8} k={bc.k_} silhouette {bc.silhouette_:.3f} stability {bc.stability_:.3f} "
        f"sizes {bc.sizes_.tolist()}  (silhouette per k {curve})"
    )
    for row in _profile(bc):
        print(
            f"    {row['cluster']} {row['share']:6.1%} {row['description']:40} "
            + " ".join(f"{n} {row[n]:.2f}" for n in PROFILE)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder")
    parser.add_argument("--plots", type=Path, help="write PNG pictures into this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = machine_info()
    start = time.perf_counter()
    datasets = data_root(args.data) / "eth_ucy" / "datasets"
    layout = _layout_check(datasets)
    tracks = read_eth_ucy(datasets / "raw" / "all_data")
    all_feats = trajectory_features(tracks.tracks)
    feats = all_feats.select(FEATURES)
    measured = [tracks.tracks[int(p)] for p in feats.positions]
    print(
        f"ETH/UCY: {len(tracks)} tracks in {len(layout['recordings'])} recordings, "
        f"{len(feats.track_ids)} measurable ({len(feats.skipped)} skipped: fewer than 3 "
        f"points), {len(tracks.bad)} bad rows; scene folders = raw/all_data: {layout['passed']}"
    )
    fits = {}
    for scale in SCALES:
        bc = _fit(feats, scale)
        _print(scale, bc)
        fits[scale] = {**summary(bc), "profile": _profile(bc)}
        if args.plots:
            _plots(args.plots, scale, bc, measured)
    print("per recording (robust):")
    per_recording = _per_recording(feats)
    headline = fits["robust"]
    report.update(
        data={
            "tracks": len(tracks),
            "measurable": len(feats.track_ids),
            "skipped": len(feats.skipped),
            "skipped_reasons": feats.skipped,
            "bad_rows": [str(b) for b in tracks.bad],
            "layout_check": layout,
            "features": list(FEATURES),
        },
        fits=fits,
        per_recording=per_recording,
        headline={"scale": "robust", "stability_target_met": headline["stability"] >= 0.9},
        wall_s=time.perf_counter() - start,
    )
    write_json(args.json, report)
    print(f"wall {report['wall_s']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
