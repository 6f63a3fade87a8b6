"""Alert rule: hysteresis, minimum duration, cooldown, per series, batch-boundary free."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from iotml.anomaly import AlertRule
from iotml.errors import ConfigError
from iotml.types import Batch, Events

S = 1_000_000


def _batch(scores: list[float], device: str = "p", metric: str = "temp", t0: int = 0) -> Batch:
    n = len(scores)
    return Batch.from_arrays([device] * n, [metric] * n, t0 + np.arange(n) * S, np.zeros(n))


def _apply(rule: AlertRule, batch: Batch, scores: list[float]) -> tuple[Events, list[bool]]:
    events, inside = rule.apply(batch, np.array(scores), np.full(len(scores), "robust", object))
    return events, inside.tolist()


def test_hysteresis_keeps_an_anomaly_open_between_off_and_on() -> None:
    scores = [0.1, 0.6, 0.4, 0.35, 0.29, 0.45, 0.1]
    events, inside = _apply(AlertRule(on=0.5, off=0.3), _batch(scores), scores)
    assert inside == [False, True, True, True, False, False, False]
    rows = events.to_pylist()
    assert [r["kind"] for r in rows] == ["anomaly-start", "anomaly-end"]
    assert rows[1]["detail"] == {"metric": "temp", "detector": "robust", "duration_s": 3.0,
                                 "peak_score": 0.6}  # fmt: skip
    assert rows[0]["message"] == "temp: anomaly started (robust, score 0.60)"


def test_minimum_duration_ignores_blips_and_cooldown_spaces_alerts() -> None:
    scores = [0.9, 0.1, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.1]
    rule = AlertRule(on=0.5, off=0.3, min_duration_s=2.0, cooldown_s=4.0)
    events, inside = _apply(rule, _batch(scores), scores)
    assert inside == [False, False, False, False, True, False, False, False, False, False]
    assert [(r["kind"], r["ts"].timestamp()) for r in events.to_pylist()] == [
        ("anomaly-start", 4.0),
        ("anomaly-end", 5.0),
    ]  # the second run (6-8) lasts long enough but comes within 4 s of the first end


def test_series_are_independent_and_severity_follows_the_peak() -> None:
    a, b = _batch([0.1, 0.9, 0.1], "a"), _batch([0.6, 0.6, 0.1], "b")
    both = Batch.concat([a, b])
    scores = [0.1, 0.9, 0.1, 0.6, 0.6, 0.1]
    events, inside = _apply(AlertRule(), both, scores)
    assert inside == [False, True, False, True, True, False]
    ends = {r["device_id"]: r["severity"] for r in events.to_pylist() if r["kind"] == "anomaly-end"}
    assert ends == {"a": "critical", "b": "warning"}


def test_batch_boundaries_and_saved_state_do_not_change_alerts() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 300) ** 3
    batch = _batch(scores.tolist())
    whole, inside = AlertRule(min_duration_s=1, cooldown_s=5).apply(
        batch, scores, np.full(300, "x", object)
    )
    first = AlertRule(min_duration_s=1, cooldown_s=5)
    e1, i1 = first.apply(batch.slice(0, 120), scores[:120], np.full(120, "x", object))
    second = AlertRule(min_duration_s=1, cooldown_s=5)
    second.load_state(first.state())
    e2, i2 = second.apply(batch.slice(120, 180), scores[120:], np.full(180, "x", object))
    assert np.concatenate([i1, i2]).tolist() == inside.tolist()
    assert Events.concat([e1, e2]) == whole


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ConfigError, match="0 < off <= on <= 1"):
        AlertRule(on=0.3, off=0.5)
    assert orjson.loads(b"{}") == {}


def test_an_anomaly_ends_only_after_the_quiet_time() -> None:
    scores = [0.1, 0.9, 0.2, 0.8, 0.2, 0.1, 0.1, 0.1, 0.6, 0.1]
    rule = AlertRule(on=0.5, off=0.3, min_quiet_s=2.0)
    events, inside = _apply(rule, _batch(scores), scores)
    assert inside == [False, True, True, True, True, True, False, False, True, True]
    kinds = [(r["kind"], r["ts"].timestamp()) for r in events.to_pylist()]
    assert kinds == [("anomaly-start", 1.0), ("anomaly-end", 6.0), ("anomaly-start", 8.0)]
