"""The live demo: serve in-process, a fleet over MQTT and HTTP, a report scored on the truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.compute as pc
from typer.testing import CliRunner

from iotml.cli import app
from iotml.cli.live import run_live
from iotml.sim import FleetSpec, read_truth
from iotml.sim.score import event_rows, score_truth
from iotml.store import MemoryStore, open_store


def test_live_run_stores_both_paths_and_its_alerts_match_the_ground_truth(tmp_path: Path) -> None:
    store = MemoryStore()
    spec = FleetSpec(machines=3, meters=2, thermostats=2, degrading_share=1.0, speedup=6000.0)
    truth_path = tmp_path / "truth.jsonl"
    run = asyncio.run(run_live(store, spec, duration_s=6.0, interval_s=0.1, truth_path=truth_path))
    stored = store.query()
    assert run.metrics.stored == len(stored) == run.sim.readings
    kinds = {d.split("-")[0] for d in pc.unique(stored.device_id).to_pylist()}
    assert kinds == {"machine", "meter", "thermostat"}  # MQTT and HTTP both arrived
    assert {d.device_id for d in store.devices() if d.token_hash} == {"meter-001", "meter-002"}
    events = store.events()
    assert len(events) == run.metrics.events == len(run.all_events())
    truth = read_truth(truth_path)
    hits = score_truth(truth, event_rows(events))
    assert len(hits) == len([r for r in truth if r.type in ("failure", "anomaly")])
    failures = [h for h in hits if h.record.type == "failure"]
    assert failures, "at 6000x every machine fails within 6 simulated hours"
    assert any(h.caught for h in failures), "the alerts warn of a machine wearing out"
    starts = [e for e in events.to_pylist() if e["kind"] == "anomaly-start"]
    assert starts, "the anomaly stage raised alerts"
    for e in starts:  # each names the metric responsible, one its device really has
        kind = run.fleet.kind_of(e["device_id"])
        assert e["detail"]["metric"] in kind.metrics
        assert e["message"].startswith(e["detail"]["metric"] + ":")


def test_demo_command_runs_live_and_reports(tmp_path: Path) -> None:
    home = tmp_path / "h"
    args = ["--home", str(home), "demo", "--duration", "3s", "--machines", "2"]
    result = CliRunner().invoke(app, [*args, "--meters", "2", "--thermostats", "2"])
    assert result.exit_code == 0, result.output
    for title in ("ingested", "alerts raised", "injected by the simulation"):
        assert title in result.output
    assert (home / "sim-truth.jsonl").exists()
    with open_store(home / "iotml.duckdb") as store:
        assert len(store.query()) > 0
