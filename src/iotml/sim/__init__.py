"""Device-fleet simulators: realistic telemetry with known, injected faults."""

from __future__ import annotations

from iotml.sim.history import CHANNELS, Channel, FleetHistory, fleet_history

__all__ = ["CHANNELS", "Channel", "FleetHistory", "fleet_history"]
