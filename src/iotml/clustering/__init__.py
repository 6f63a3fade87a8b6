"""Behaviour clustering: trajectories and usage profiles grouped with k-means, explained.

* :mod:`~iotml.clustering.tracks` — movement tracks and their loaders (go_track GPS CSVs,
  ETH/UCY ``frame id x y`` files), bad rows reported with their line numbers;
* :mod:`~iotml.clustering.trajectory` — per-track movement features (speed, stops,
  straightness, turning, time of day), robust to irregular sampling and GPS jitter;
* :mod:`~iotml.clustering.profiles` — normalised daily load shapes from meter series;
* :mod:`~iotml.clustering.kmeans` — :class:`BehaviourClusters`: k-means with scaling, k by
  silhouette, the elbow curve, stability across seeds, clusters described in words;
* :mod:`~iotml.clustering.change` — ``behaviour_change`` events when a device's cluster
  moves and stays moved;
* :mod:`~iotml.clustering.plots` — PNG pictures of all of the above.
"""

from __future__ import annotations

__all__ = [
    "FEATURE_NAMES",
    "MODE_FEATURES",
    "BehaviourChange",
    "BehaviourClusters",
    "DailyProfiles",
    "Track",
    "TrackSet",
    "TrajectoryFeatures",
    "daily_profiles",
    "household_day_profiles",
    "read_eth_ucy",
    "read_go_track",
    "trajectory_features",
]

from iotml.clustering.change import BehaviourChange
from iotml.clustering.kmeans import BehaviourClusters
from iotml.clustering.profiles import DailyProfiles, daily_profiles, household_day_profiles
from iotml.clustering.tracks import Track, TrackSet, read_eth_ucy, read_go_track
from iotml.clustering.trajectory import (
    FEATURE_NAMES,
    MODE_FEATURES,
    TrajectoryFeatures,
    trajectory_features,
)
