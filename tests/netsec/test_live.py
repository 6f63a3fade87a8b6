"""IntrusionScorer: flows fed in batches are scored with their history; events are throttled."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest
from tests.netsec.traffic import T0, attacks, benign

from iotml.errors import ConfigError
from iotml.netsec.flows import Flows
from iotml.netsec.model import MODEL_FEATURES, NetsecModel
from iotml.pipeline.netsec import INTRUSION, IntrusionScorer
from iotml.types import Events

ATTACKERS = {"10.0.0.66": "scan", "10.0.0.77": "ddos", "10.0.0.88": "beacon"}
HOUR = 3600.0


@pytest.fixture(scope="module")
def model() -> NetsecModel:
    return NetsecModel().fit([benign(1), benign(2)])


@pytest.fixture(scope="module")
def log() -> Flows:
    return attacks(3)


def batches(table: pa.Table, seconds: float) -> list[pa.Table]:
    """The flows (sorted by time) cut into consecutive ``seconds``-long batches."""
    ts = table.column("ts").to_numpy()
    edges = np.arange(ts.min(), ts.max() + seconds, seconds)
    cuts = np.searchsorted(ts, edges[1:], side="left")
    starts = np.r_[0, cuts[:-1]]
    return [table.slice(a, b - a) for a, b in zip(starts, cuts, strict=True) if b > a]


def feed(scorer: IntrusionScorer, parts: list[pa.Table]) -> tuple[list[dict], np.ndarray]:
    """Every event (as dictionaries) and every flow's p-value, in order."""
    events, p = [], []
    for part in parts:
        events.append(scorer.process(part))
        p.append(scorer.last_scores.column("p_value").to_numpy())
    return Events.concat(events).to_pylist(), np.concatenate(p)


def test_batches_are_scored_as_the_whole_log_is(model: NetsecModel, log: Flows) -> None:
    scorer = IntrusionScorer(model)
    assert scorer.warming_up  # the model has not learnt this site: its first 2 h teach it
    _, live = feed(scorer, batches(log.table, 300.0))
    assert not scorer.warming_up
    assert model.site_ is None
    scored = model.score(log)
    warm = scored.column("warmup").to_numpy(zero_copy_only=False)
    assert 0 < warm.sum() < len(warm)
    assert np.all(live[warm] == 1.0)  # warm-up flows are never flagged
    whole = scored.column("p_value").to_numpy()
    # the history gave every feature, and the same warm-up the same site
    np.testing.assert_allclose(live[~warm], whole[~warm], rtol=1e-12)
    # what it keeps: twice the window, and before that each conversation's last flows
    kept = scorer.history
    assert 0 < kept.num_rows < log.table.num_rows
    old = kept.filter(pa.compute.field("ts") < log.table.column("ts")[-1].as_py() - 1200.0)
    conversations = old.group_by(["orig_h", "resp_h", "resp_p", "proto"]).aggregate(
        [("ts", "count")]
    )
    assert max(conversations.column("ts_count").to_pylist()) <= model.beacon_flows


def test_attackers_raise_events_benign_devices_do_not(model: NetsecModel, log: Flows) -> None:
    cooldown = HOUR
    events, _ = feed(IntrusionScorer(model, cooldown_s=cooldown), batches(log.table, 300.0))
    by_device: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_device[event["device_id"]].append(event)
    assert set(by_device) == set(ATTACKERS)  # and no benign device
    for device, found in by_device.items():
        times = [e["ts"].timestamp() for e in found]
        assert np.all(np.diff(times) >= cooldown), device  # one event per cooldown at most
    assert len(by_device["10.0.0.88"]) >= 3  # the beacon goes on for hours: again each hour
    flagged = model.score(log).filter(pa.compute.field("flagged"))
    for device in ("10.0.0.66", "10.0.0.77"):  # bursts: every flagged flow is counted once
        counted = sum(e["detail"]["flows_flagged"] for e in by_device[device])
        assert counted == flagged.filter(pa.compute.field("orig_h") == device).num_rows


def test_a_burst_in_one_batch_is_one_event_that_counts_it(model: NetsecModel, log: Flows) -> None:
    table = log.table
    ts = table.column("ts").to_numpy()
    start = T0 + 3 * HOUR + 600  # the DDoS: 600 flows in a minute
    scorer = IntrusionScorer(model, cooldown_s=HOUR)
    before, burst = np.searchsorted(ts, [start - 1, start + 120])
    scorer.process(table.slice(0, before))
    events = scorer.process(table.slice(before, burst - before)).to_pylist()
    ddos = [e for e in events if e["device_id"] == "10.0.0.77"]
    assert len(ddos) == 1
    event = ddos[0]
    detail = event["detail"]
    assert detail["flows_flagged"] >= 540
    assert event["kind"] == INTRUSION
    assert event["severity"] == "critical"  # the most unusual flow is at the p-value floor
    assert event["score"] == pytest.approx(1 - detail["p_value"])
    assert event["model"] == model.ref
    assert detail["resp_h"] == "93.184.216.34"
    assert detail["resp_p"] == 80
    assert detail["destinations"][0][0] == "93.184.216.34"
    assert detail["uid"] in detail["uids"]
    assert 1 <= len(detail["uids"]) <= 10
    names = [f["name"] for f in detail["features"]]
    assert len(names) == 3
    assert set(names) <= set(MODEL_FEATURES)
    assert names[0] in event["message"]
    assert event["message"].startswith(f"10.0.0.77: {detail['flows_flagged']} suspicious flows")


def test_isolated_flagged_flows_raise_nothing_unless_min_flows_is_one(
    model: NetsecModel,
) -> None:
    quiet = benign(7)
    strict, _ = feed(IntrusionScorer(model), batches(quiet.table, 600.0))
    assert strict == []
    scored = model.score(quiet)
    assert pa.compute.sum(scored.column("flagged")).as_py() > 0  # yet some flows were flagged
    eager, _ = feed(IntrusionScorer(model, min_flows=1, cooldown_s=0), [quiet.table])
    assert len(eager) == pa.compute.sum(scored.column("flagged")).as_py()
    assert all(e["severity"] in ("warning", "critical") for e in eager)


def test_the_history_per_device_is_capped(model: NetsecModel, log: Flows) -> None:
    scorer = IntrusionScorer(model, max_device_flows=50)
    scorer.process(log.table)
    per_device = scorer.history.group_by("orig_h").aggregate([("ts", "count")])
    assert max(per_device.column("ts_count").to_pylist()) <= 50


def test_an_empty_batch_and_bad_settings(model: NetsecModel) -> None:
    scorer = IntrusionScorer(model)
    assert len(scorer.process(benign(1).table.slice(0, 0))) == 0
    with pytest.raises(ConfigError, match="not trained"):
        IntrusionScorer(NetsecModel())
    with pytest.raises(ConfigError, match="min_flows=0"):
        IntrusionScorer(model, min_flows=0)
