"""Scoring events against the simulation's ground truth."""

from __future__ import annotations

from iotml.sim import TruthRecord, event_rows, score_truth
from iotml.types import Events

S = 1_000_000


def test_failures_count_only_warnings_while_wearing_and_anomalies_need_their_metric() -> None:
    truth = [
        TruthRecord("degradation", "m-1", "*", "bearing", 10 * S, 50 * S),
        TruthRecord("failure", "m-1", "*", "bearing", 50 * S, 60 * S),
        TruthRecord("failure", "m-2", "*", "winding", 50 * S, 60 * S),
        TruthRecord("anomaly", "t-1", "humidity", "stuck", 20 * S, 30 * S),
        TruthRecord("anomaly", "t-2", "*", "gap", 20 * S, 30 * S),
        TruthRecord("anomaly", "t-3", "temperature", "spike", 40 * S, 40 * S + 1),
    ]
    events = [
        {"device_id": "m-1", "ts_us": 5 * S, "metric": "vibration"},  # before the wear began
        {"device_id": "m-1", "ts_us": 44 * S, "metric": "vibration"},
        {"device_id": "m-2", "ts_us": 55 * S, "metric": "current"},  # after the failure
        {"device_id": "t-1", "ts_us": 25 * S, "metric": "temperature"},  # wrong metric
        {"device_id": "t-2", "ts_us": 33 * S, "metric": "valve"},  # within the 5 s slack
        {"device_id": "t-3", "ts_us": 46 * S, "metric": "temperature"},  # past the slack
    ]
    hits = score_truth(truth, events)
    assert [h.record.device_id for h in hits] == ["m-1", "m-2", "t-1", "t-2", "t-3"]
    assert [h.caught for h in hits] == [True, False, False, True, False]
    assert hits[0].lead_s == 6.0
    assert hits[1].lead_s is None


def test_event_rows_take_the_metric_from_the_detail() -> None:
    events = Events.from_records(
        [
            {"ts": 7, "device_id": "a", "kind": "k", "score": 1.0, "severity": "warning",
             "model": "m@1", "message": "x", "detail": '{"metric": "temp"}'},
            {"ts": 8, "device_id": "b", "kind": "k", "score": 1.0, "severity": "warning",
             "model": "m@1", "message": "y", "detail": "{}"},
        ]
    )  # fmt: skip
    assert event_rows(events) == [
        {"device_id": "a", "ts_us": 7, "metric": "temp"},
        {"device_id": "b", "ts_us": 8, "metric": "*"},
    ]
