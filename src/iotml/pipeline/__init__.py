"""The stream pipeline: sources submit messages; micro-batches are decoded, stored, scored."""

from __future__ import annotations

from iotml.pipeline.anomaly import AnomalyStage
from iotml.pipeline.engine import Message, Pipeline, PipelineMetrics
from iotml.pipeline.registry import DeviceGate
from iotml.pipeline.rules import RulesStage
from iotml.pipeline.stage import Stage

__all__ = [
    "AnomalyStage",
    "DeviceGate",
    "Message",
    "Pipeline",
    "PipelineMetrics",
    "RulesStage",
    "Stage",
]
