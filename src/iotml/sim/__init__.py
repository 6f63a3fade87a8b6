"""Device-fleet simulators: realistic telemetry with known, injected faults.

* :func:`fleet_history` — an offline history (days of readings) with a few known faults;
* :class:`Fleet` — a live, seeded fleet (machines that wear out and fail, smart meters,
  thermostats, faulty sensors) stepped at wall-clock times, with its :class:`GroundTruth`;
* :func:`simulate` — run a fleet live into a sink (:class:`MqttSink`, :class:`HttpSink`,
  :class:`PipelineSink`) like real devices would;
* :func:`score_truth` — which injected failures and anomalies the events caught, and when.
"""

from __future__ import annotations

from iotml.sim.clean import clean_series
from iotml.sim.faults import FAULT_KINDS
from iotml.sim.fleet import Fleet, FleetSpec
from iotml.sim.history import CHANNELS, Channel, FleetHistory, fleet_history
from iotml.sim.kinds import DEVICE_KINDS, DeviceKind, Signal
from iotml.sim.physics import FAILURE_MODES
from iotml.sim.run import (
    CONTENT_TYPE,
    Outgoing,
    PipelineSink,
    SimStats,
    Sink,
    encode_tick,
    simulate,
)
from iotml.sim.score import TruthHit, event_rows, score_truth
from iotml.sim.sinks import HttpSink, MqttSink
from iotml.sim.truth import GroundTruth, TruthRecord, read_truth

__all__ = [
    "CHANNELS",
    "CONTENT_TYPE",
    "DEVICE_KINDS",
    "FAILURE_MODES",
    "FAULT_KINDS",
    "Channel",
    "DeviceKind",
    "Fleet",
    "FleetHistory",
    "FleetSpec",
    "GroundTruth",
    "HttpSink",
    "MqttSink",
    "Outgoing",
    "PipelineSink",
    "Signal",
    "SimStats",
    "Sink",
    "TruthHit",
    "TruthRecord",
    "clean_series",
    "encode_tick",
    "event_rows",
    "fleet_history",
    "read_truth",
    "score_truth",
    "simulate",
]
