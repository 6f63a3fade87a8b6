"""Behaviour clustering: trajectories and usage profiles grouped with k-means, explained."""

from __future__ import annotations

__all__: list[str] = []
