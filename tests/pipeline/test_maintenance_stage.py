"""MaintenanceStage: scheduled scoring, score events, one alert per episode, state kept."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from iotml.errors import ConfigError
from iotml.maintenance.model import MaintenanceModel, Prediction
from iotml.pipeline import Stage
from iotml.pipeline.maintenance import ALERT_KIND, MaintenanceStage
from iotml.store import MemoryStore
from iotml.types import Batch

T0 = 1_767_225_600_000_000
MIN = 60_000_000


class ScriptedModel:
    """Stands in for a trained model: ``values[i]`` is every machine's score at call i."""

    def __init__(self, task: str, values: list[dict[str, float]]) -> None:
        self.task, self.values, self.calls = task, values, 0
        self.ref, self.horizon_s = "pump-risk@2.0.0", 3600.0

    def score(self, store: Any, devices: Iterable[str] | None, now: int) -> list[Prediction]:
        scores = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        ts = datetime.fromtimestamp(now / 1e6, UTC)
        why = ("temperature trend +3.1/h over 1h (typical +0.01): risk +0.4",)
        return [Prediction(d, ts, v, why, ("temperature_slope_1h",)) for d, v in scores.items()]


def _stage(task: str, values: list[dict[str, float]], **kw: Any) -> MaintenanceStage:
    model = cast(MaintenanceModel, ScriptedModel(task, values))
    return MaintenanceStage(model, kw.pop("store", MemoryStore()), **kw)


def _rows(stage: MaintenanceStage, now: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = stage.tick(now).table.to_pylist()
    return [{**r, "detail": orjson.loads(r["detail"])} for r in rows]


def test_scores_on_schedule_and_alerts_once_per_episode() -> None:
    risk = [0.1, 0.6, 0.95, 0.45, 0.3, 0.7]  # rises, hovers, drops below 0.4, rises again
    stage = _stage("failure", [{"pump-1": r, "pump-2": 0.05} for r in risk], every_s=60)
    assert isinstance(stage, Stage)
    alerts, scores = [], []
    for i in range(len(risk)):
        rows = _rows(stage, T0 + i * MIN)
        assert len(stage.process(Batch.empty(), T0 + i * MIN + 1)) == 0  # not due again yet
        scores += [r for r in rows if r["kind"] == "failure_risk"]
        alerts += [r for r in rows if r["kind"] == ALERT_KIND]
    assert len(scores) == 2 * len(risk)  # every machine, every minute
    first = scores[0]
    assert first["model"] == "pump-risk@2.0.0"
    assert first["severity"] == "info"
    assert first["detail"]["risk"] == 0.1
    assert first["detail"]["horizon_h"] == 1.0
    assert [(a["device_id"], a["score"]) for a in alerts] == [("pump-1", 0.6), ("pump-1", 0.7)]
    assert [a["severity"] for a in alerts] == ["warning", "warning"]
    assert "failure risk 0.60 >= 0.5 within 1 h — temperature trend +3.1/h" in alerts[0]["message"]
    assert alerts[0]["detail"]["features"] == ["temperature_slope_1h"]


def test_a_very_high_risk_is_critical() -> None:
    stage = _stage("failure", [{"pump-1": 0.97}], risk_threshold=0.8)
    (alert,) = [r for r in _rows(stage, T0) if r["kind"] == ALERT_KIND]
    assert alert["severity"] == "critical"


def test_rul_events_and_alerts_in_hours() -> None:
    ruls = [{"m": 30.0}, {"m": 7.0}, {"m": 2.0}, {"m": 9.0}, {"m": 13.0}, {"m": 6.0}]
    stage = _stage("rul", ruls, rul_threshold=8.0, every_s=1)
    rows = [r for i in range(len(ruls)) for r in _rows(stage, T0 + i * 10**6)]
    assert [r["detail"]["rul_h"] for r in rows if r["kind"] == "rul"] == [30, 7, 2, 9, 13, 6]
    alerts = [r for r in rows if r["kind"] == ALERT_KIND]
    assert [a["score"] for a in alerts] == [7.0, 6.0]  # re-armed above 1.25 * 8 h only
    assert "remaining useful life 7.0 h <= 8 h" in alerts[0]["message"]


def test_alert_state_survives_a_restart_through_the_store() -> None:
    store = MemoryStore()
    _rows(_stage("failure", [{"pump-1": 0.9}], store=store), T0)
    again = _stage("failure", [{"pump-1": 0.9}], store=store)
    assert again.alerting == {"pump-1"}
    assert [r["kind"] for r in _rows(again, T0 + MIN)] == ["failure_risk"]
    store.save_state("maintenance/pump-risk@2.0.0", b"{not json")
    assert _stage("failure", [{}], store=store).alerting == set()


def test_ticks_in_between_do_nothing_and_no_machine_means_no_events() -> None:
    stage = _stage("failure", [{}], every_s=600)
    assert len(stage.tick(T0)) == 0
    stage.model.score = lambda *a: pytest.fail("scored before it was due")  # type: ignore[method-assign]
    assert len(stage.tick(T0 + 599 * 10**6)) == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"every_s": 0}, "every_s=0"),
        ({"risk_threshold": 1.5}, "risk_threshold=1.5"),
        ({"critical_risk": -1}, "critical_risk=-1"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _stage("failure", [{}], **kw)


def test_a_rul_model_needs_a_threshold() -> None:
    with pytest.raises(ConfigError, match="rul_threshold=None"):
        _stage("rul", [{}])
