"""Seeded synthetic movers for clustering tests: walkers, runners and stop-and-go vehicles.

Each mover is simulated on a fine 0.1-s grid (speed profile and heading), then observed
at irregular times (gaps drawn uniformly in 0.5-1.5 s) with Gaussian position jitter.
"""

from __future__ import annotations

__all__ = ["GROUPS", "make_movers"]

import numpy as np
import numpy.typing as npt

from iotml.clustering.tracks import Track

GROUPS = ("walker", "runner", "vehicle")
_FINE_DT = 0.1


def _walker(rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.float64], float]:
    speed = np.full(n, rng.normal(1.3, 0.1))
    if rng.random() < 0.3:  # a few stop to look around
        start = rng.integers(0, n // 2)
        speed[start : start + int(rng.uniform(3, 8) / _FINE_DT)] = 0.0
    return speed, 0.25  # wiggly: heading random walk, rad per sqrt(s)


def _runner(rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.float64], float]:
    return np.full(n, rng.normal(3.5, 0.3)), 0.05


def _vehicle(rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.float64], float]:
    cruise, target, i = rng.uniform(8, 12), np.zeros(n), 0
    while i < n:  # drive 20-60 s, then stop 10-40 s
        drive = int(rng.uniform(20, 60) / _FINE_DT)
        target[i : i + drive] = cruise
        i += drive + int(rng.uniform(10, 40) / _FINE_DT)
    ramp = int(4 / _FINE_DT)  # ~2.5 m/s² acceleration and braking
    speed = np.convolve(target, np.ones(ramp) / ramp, mode="same")
    return speed, 0.02


def _track(rng: np.random.Generator, group: int, track_id: str, jitter_m: float) -> Track:
    duration = rng.uniform(60, 180) if group < 2 else rng.uniform(150, 300)
    n = int(duration / _FINE_DT)
    speed, wiggle = (_walker, _runner, _vehicle)[group](rng, n)
    steps = rng.normal(0.0, wiggle * np.sqrt(_FINE_DT), n)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(steps)
    x = np.cumsum(speed * np.cos(heading) * _FINE_DT)
    y = np.cumsum(speed * np.sin(heading) * _FINE_DT)
    fine_t = np.arange(n) * _FINE_DT
    t = np.cumsum(rng.uniform(0.5, 1.5, int(duration * 2)))
    t = t[t < fine_t[-1]]
    obs_x = np.interp(t, fine_t, x) + rng.normal(0, jitter_m, len(t))
    obs_y = np.interp(t, fine_t, y) + rng.normal(0, jitter_m, len(t))
    return Track(track_id, t, obs_x, obs_y, planar=True, label=GROUPS[group])


def make_movers(
    n_per_group: int = 30, *, seed: int = 0, jitter_m: float = 0.05
) -> tuple[list[Track], npt.NDArray[np.int64]]:
    """``n_per_group`` tracks of each group and their true group index (see :data:`GROUPS`)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(GROUPS)), n_per_group)
    tracks = [_track(rng, int(g), f"m{i}", jitter_m) for i, g in enumerate(groups)]
    return tracks, groups.astype(np.int64)
