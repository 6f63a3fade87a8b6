"""Household daily load profiles: k-means clusters of days, described, stable, seasonal.

    python benchmarks/bench_cluster_household.py               # ~1 min, one core
    python benchmarks/bench_cluster_household.py --json benchmarks/results/cluster-household.json

Data: ``$IOTML_DATA/household_power/household_power_consumption_hourly.csv`` (default
``../shared/data``), the UCI household's hourly means, ``Global_active_power`` (kW), read
with :func:`iotml.clustering.household_day_profiles`: one row per calendar day with at
most 2 of 24 hours missing (interpolated); the other days are skipped and counted by
reason. Features (:meth:`~iotml.clustering.DailyProfiles.features`): the 24-hour load shape
divided by the day's mean, ``weekend``, ``peak_hour`` as sin/cos, ``load_factor`` (mean over
maximum) and ``energy`` (kWh in the day).

Protocol, fixed before the runs: ``BehaviourClusters(k_range=(2, 8), seeds=10, seed=0)``
with ``scale="robust"`` (the pre-declared headline) and ``"standard"``; k by the best mean
silhouette, nothing else. Reported: k, silhouette per k, inertia per k, stability (mean
pairwise adjusted Rand index between the fits of seeds 0-9; target >= 0.9), the profile
table with its words, per cluster the share of weekend days, the mean energy, and the
crosstab of cluster by season (meteorological: DJF, MAM, JJA, SON) and by month, with the
months in which the cluster is most frequent. k = 3 and k = 4, fixed, are reported too
(for interpretability; not a choice). ``--plots DIR`` writes the silhouette/elbow curves,
the centroid map and the mean load shape per cluster.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cluster_bench_common import SEED, SEEDS, data_root, machine_info, summary, write_json
from iotml.clustering import BehaviourClusters, DailyProfiles, household_day_profiles
from iotml.clustering.plots import plot_centroids, plot_profiles, plot_selection

Scale = Literal["robust", "standard", "quantile"]
FILE = Path("household_power") / "household_power_consumption_hourly.csv"
SEASONS = ("winter (DJF)", "spring (MAM)", "summer (JJA)", "autumn (SON)")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RUNS: tuple[tuple[Scale, int | None], ...] = (
    ("robust", None),
    ("standard", None),
    ("robust", 3),
    ("robust", 4),
    ("standard", 3),
    ("standard", 4),
)


def _months(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """Calendar month of each day, 0 = January."""
    return (days.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)


def _clusters(bc: BehaviourClusters, profiles: DailyProfiles) -> list[dict[str, Any]]:
    """Per cluster: profile row, weekend share, energy, season and month crosstabs."""
    month = _months(profiles.days)
    season = (month + 1) % 12 // 3  # Dec-Feb 0, Mar-May 1, Jun-Aug 2, Sep-Nov 3
    weekend, energy = profiles.extras[:, 0], profiles.extras[:, 3]
    month_days = np.bincount(month, minlength=12)
    out = []
    for row in bc.profile_table():
        mine = bc.labels_ == row["cluster"]
        by_month = np.bincount(month[mine], minlength=12)
        share_of_month = by_month / np.maximum(month_days, 1)
        top = np.argsort(-share_of_month, kind="stable")[:3]
        out.append(
            {
                "cluster": row["cluster"],
                "size": row["size"],
                "share": row["share"],
                "description": row["description"],
                "weekend_share": float(weekend[mine].mean()),
                "energy_kwh_mean": float(energy[mine].mean()),
                "load_factor_mean": float(profiles.extras[mine, 2].mean()),
                "peak_hour_median": float(np.median(profiles.extras[mine, 1])),
                "seasons": dict(
                    zip(SEASONS, np.bincount(season[mine], minlength=4).tolist(), strict=True)
                ),
                "months": dict(zip(MONTHS, by_month.tolist(), strict=True)),
                "most_frequent_months": [
                    {"month": MONTHS[m], "share_of_month_days": float(share_of_month[m])}
                    for m in top
                ],
            }
        )
    return out


def _print(name: str, bc: BehaviourClusters, clusters: list[dict[str, Any]]) -> None:
    curve = ", ".join(f"{k}: {s:.3f}" for k, s in zip(bc.ks_, bc.silhouettes_, strict=True))
    print(
        f"{name:18} k={bc.k_} silhouette {bc.silhouette_:.3f} stability {bc.stability_:.3f}"
        f"  (silhouette per k {curve})"
    )
    for c in clusters:
        months = ", ".join(
            f"{m['month']} {m['share_of_month_days']:.0%}" for m in c["most_frequent_months"]
        )
        print(
            f"    {c['cluster']} n={c['size']:4} {c['share']:6.1%} {c['description']:45} "
            f"weekend {c['weekend_share']:.2f} energy {c['energy_kwh_mean']:5.1f} kWh  "
            f"seasons {list(c['seasons'].values())}  most in {months}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder")
    parser.add_argument("--plots", type=Path, help="write PNG pictures into this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = machine_info()
    start = time.perf_counter()
    profiles = household_day_profiles(data_root(args.data) / FILE)
    matrix, names = profiles.features()
    reasons = Counter(s.reason for s in profiles.skipped)
    print(
        f"household: {len(profiles.days)} days kept ({profiles.days[0]} … {profiles.days[-1]}), "
        f"{len(profiles.skipped)} skipped: {dict(reasons)}"
    )
    fits = []
    for scale, k in RUNS:
        bc = BehaviourClusters(k=k, k_range=(2, 8), seeds=SEEDS, scale=scale, seed=SEED)
        bc.fit(matrix, names)
        clusters = _clusters(bc, profiles)
        name = f"{scale}, k={'silhouette' if k is None else k}"
        _print(name, bc, clusters)
        fits.append({"name": name, **summary(bc), "clusters": clusters})
        if args.plots:
            args.plots.mkdir(parents=True, exist_ok=True)
            stem = f"household-{scale}-k{bc.k_}{'' if k else '-chosen'}"
            plot_selection(bc, args.plots / f"{stem}-selection.png")
            plot_centroids(bc, args.plots / f"{stem}-centroids.png")
            labels = [f"{c}: {w}" for c, w in enumerate(bc.describe())]
            plot_profiles(profiles.shapes, bc.labels_, args.plots / f"{stem}-shapes.png",
                          names=labels)  # fmt: skip
    headline = fits[0]
    report.update(
        data={
            "days": len(profiles.days),
            "first_day": str(profiles.days[0]),
            "last_day": str(profiles.days[-1]),
            "skipped": len(profiles.skipped),
            "skipped_reasons": dict(reasons),
            "skipped_days": [str(s.day) for s in profiles.skipped],
            "features": list(names),
        },
        fits=fits,
        headline={"name": headline["name"], "stability_target_met": headline["stability"] >= 0.9},
        wall_s=time.perf_counter() - start,
    )
    write_json(args.json, report)
    print(f"wall {report['wall_s']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
