"""Network security for IoT fleets: flows from Zeek logs, flow CSVs and pcaps, per-flow,
per-conversation and per-device features, unsupervised detectors (PCA reconstruction
error, Isolation Forest) and a supervised one, explained ``intrusion`` alerts."""

from __future__ import annotations

__all__ = [
    "ALIASES",
    "FEATURES",
    "FLOW_SCHEMA",
    "LABELS",
    "BadLine",
    "Detector",
    "Flows",
    "ForestDetector",
    "NetsecModel",
    "PCADetector",
    "SupervisedDetector",
    "ZeekFollower",
    "empty_flows",
    "evaluate_sources",
    "flow_features",
    "follow_zeek",
    "parse_zeek",
    "read_flow_csv",
    "read_flows",
    "read_pcap",
    "read_zeek",
    "score_flows",
]

from iotml.netsec.detectors import Detector, ForestDetector, PCADetector, SupervisedDetector
from iotml.netsec.evaluate import evaluate_sources, score_flows
from iotml.netsec.features import FEATURES, flow_features
from iotml.netsec.flowcsv import ALIASES, read_flow_csv
from iotml.netsec.flows import FLOW_SCHEMA, LABELS, BadLine, Flows, empty_flows
from iotml.netsec.inputs import read_flows
from iotml.netsec.model import NetsecModel
from iotml.netsec.pcap import read_pcap
from iotml.netsec.zeek import ZeekFollower, follow_zeek, parse_zeek, read_zeek
