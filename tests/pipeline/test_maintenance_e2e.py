"""End to end: simulated machines degrade, the live stage warns before they fail.

History from one seeded fleet (36 simulated hours, 8 machines that all wear out) trains a
failure-within-1-h model, labelled by a maintenance log written from the fleet's failure
records, and is deployed as a signed bundle. A second fleet (another seed: machines the
model never saw) then runs live for 12 simulated hours through
:class:`MaintenanceStage`, five simulated minutes per micro-batch, and every alert is
checked against that fleet's truth.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from tests.maintenance.fleet import FIVE_MINUTES, METRICS, MINUTE, T0, fleet, log_csv, run

from iotml.maintenance.labels import read_maintenance_log
from iotml.maintenance.model import MaintenanceModel
from iotml.pipeline.maintenance import ALERT_KIND, MaintenanceStage
from iotml.registry import ModelRegistry
from iotml.sim import GroundTruth
from iotml.store import open_store
from iotml.types import Batch, Events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _deployed(tmp_path: Path) -> MaintenanceModel:
    history, store = fleet(seed=1), open_store("memory://")
    run(history, store, 36 * 60)
    log = read_maintenance_log(io.StringIO(log_csv(history.truth)))
    model = MaintenanceModel(
        METRICS, every=FIVE_MINUTES, windows=("30min", "2h"), horizon=timedelta(hours=1), cv=0
    )
    assert model.fit(store, log, end=T0 + 36 * 60 * MINUTE)["failures"] >= 20
    registry = ModelRegistry(tmp_path)
    model.save(registry, "fleet-risk", "1.0.0")
    return MaintenanceModel.load(registry, "fleet-risk")


def _warnings(truth: GroundTruth, alerts: list[tuple[str, int]]) -> tuple[int, list[float], int]:
    """Failures, the lead (minutes) of each one warned — the first alert raised while the
    machine degraded towards it — and the alerts raised outside any degradation."""
    degrading = truth.select(type="degradation")
    failed = {(r.device_id, r.start_us) for r in truth.select(type="failure")}
    episodes = [r for r in degrading if (r.device_id, r.end_us) in failed]
    leads = []
    for r in episodes:
        hits = [t for d, t in alerts if d == r.device_id and r.start_us <= t < r.end_us]
        if hits:
            leads.append((r.end_us - min(hits)) / MINUTE)
    outside = sum(
        not any(r.device_id == d and r.start_us <= t < r.end_us for r in degrading)
        for d, t in alerts
    )
    return len(episodes), leads, outside


def test_the_live_stage_warns_before_simulated_failures(tmp_path: Path) -> None:
    live_fleet, live = fleet(seed=2), open_store("memory://")
    stage = MaintenanceStage(_deployed(tmp_path), live, every_s=600, risk_threshold=0.5)
    events = []
    for k in range(0, 12 * 60, 5):
        batch = Batch.concat([live_fleet.step(T0 + (k + j) * MINUTE) for j in range(5)])
        live.write(batch)  # as the pipeline does: stored first, then handed to the stages
        events.append(stage.process(batch, T0 + (k + 4) * MINUTE))
    rows = Events.concat(events).table.to_pylist()
    alerts = [
        (r["device_id"], (r["ts"] - EPOCH) // timedelta(microseconds=1))
        for r in rows
        if r["kind"] == ALERT_KIND
    ]
    failures, leads, false_alarms = _warnings(live_fleet.truth, alerts)
    print(
        f"warned {len(leads)}/{failures} failures, median lead {np.median(leads):.0f} min, "
        f"{false_alarms} of {len(alerts)} alerts outside a degradation"
    )
    assert {r["model"] for r in rows} == {"fleet-risk@1.0.0"}
    assert {r["kind"] for r in rows} == {"failure_risk", ALERT_KIND}
    assert failures >= 8
    assert len(leads) >= 0.8 * failures  # most failures are warned of ...
    assert np.median(leads) >= 15  # ... well ahead of time
    assert false_alarms <= len(alerts) // 3
    assert all(" — " in str(r["message"]) for r in rows if r["kind"] == ALERT_KIND)
