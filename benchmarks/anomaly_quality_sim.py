"""The simulated halves of ``bench_anomaly_quality.py``: the fleet's injected faults, and
false alarms on clean synthetic series. Both feed :class:`iotml.pipeline.AnomalyStage` as
the live pipeline does: ``process`` per batch, ``tick`` on the clock between batches."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow.compute as pc

from iotml.anomaly import AlertRule, make_detector
from iotml.pipeline import AnomalyStage
from iotml.sim import Fleet, FleetSpec, clean_series, score_truth
from iotml.sim.truth import TruthRecord
from iotml.types import Batch, Events

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000
SLACK_S = 5.0  # score_truth's default: an alert may come this long after a truth interval


# -- the simulated fleet ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Episode:
    """One alert: its series, detector, and when it started and ended (run end if open)."""

    device_id: str
    metric: str
    detector: str
    start_us: int
    end_us: int
    from_tick: bool


def episodes(events: Sequence[Events], last_us: int) -> list[Episode]:
    """Alert episodes from the stage's events: each start paired with its series' next end."""
    rows = [r for e in events for r in e.table.to_pylist()]
    rows.sort(key=lambda r: (r["ts"], r["kind"] != "anomaly-end"))
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for r in rows:
        detail = orjson.loads(r["detail"])
        key = (r["device_id"], detail.get("metric", "*"))
        ts = int(r["ts"].timestamp() * 1e6) if hasattr(r["ts"], "timestamp") else int(r["ts"])
        if r["kind"] == "anomaly-start":
            open_[key] = {"ts": ts, "detector": str(detail.get("detector", "")),
                          "tick": "silent_s" in detail}  # fmt: skip
        elif r["kind"] == "anomaly-end" and key in open_:
            s = open_.pop(key)
            out.append(Episode(*key, s["detector"], s["ts"], ts, s["tick"]))
    out += [Episode(*k, s["detector"], s["ts"], last_us, s["tick"]) for k, s in open_.items()]
    return sorted(out, key=lambda e: e.start_us)


def is_true(ep: Episode, truth: Sequence[TruthRecord], slack_us: int) -> bool:
    """Whether an episode overlaps a truth interval of its device (and metric, if named)."""
    return any(
        r.device_id == ep.device_id
        and r.metric in ("*", ep.metric)
        and ep.start_us < r.end_us + slack_us
        and r.start_us <= ep.end_us
        for r in truth
    )


def run_fleet(spec: FleetSpec, steps: int, detector: str) -> dict[str, Any]:
    """Step the fleet ``steps`` wall seconds through an ``AnomalyStage``; its events and truth."""
    fleet = Fleet(spec)
    stage = AnomalyStage(make_detector(detector), AlertRule(model=f"{detector}@1"))
    events: list[Events] = []
    readings = dict.fromkeys(spec.counts, 0)
    started = time.perf_counter()
    for k in range(steps):
        t = T0 + k * SECOND
        batch = fleet.step(t)
        for kind in readings:
            readings[kind] += pc.sum(pc.starts_with(batch.device_id, kind)).as_py() or 0
        events.append(stage.process(batch, t))
        events.append(stage.tick(t + SECOND // 2))  # the pipeline's clock tick between steps
    seconds = time.perf_counter() - started
    return {"events": events, "truth": list(fleet.truth), "readings": readings,
            "last_us": T0 + steps * SECOND, "seconds": seconds}  # fmt: skip


def per_kind(truth: list[TruthRecord], starts: list[dict[str, Any]], speedup: float
             ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per fault kind: caught (an alert started in the span, :func:`score_truth`), recall on
    the first simulated day and after it, median delay (simulated minutes; for failures from
    the degradation's onset) and, for failures, the median warning lead before them."""
    sim_min = speedup / 60.0 / SECOND  # wall microseconds -> simulated minutes
    day_us = 86_400 / speedup * SECOND
    onsets = {(r.device_id, r.end_us): r.start_us for r in truth if r.type == "degradation"}
    found: dict[str, dict[str, list[Any]]] = {}
    for hit in score_truth(truth, starts, slack_s=SLACK_S):
        r = hit.record
        kind = "degradation → failure" if r.type == "failure" else r.kind
        k = found.setdefault(kind, {"day1": [], "later": [], "delay": [], "lead": []})
        k["day1" if r.start_us - T0 < day_us else "later"].append(hit.caught)
        if hit.first_us is None:
            continue
        onset = (
            onsets.get((r.device_id, r.start_us), r.start_us) if r.type == "failure" else r.start_us
        )
        k["delay"].append((hit.first_us - onset) * sim_min)
        if r.type == "failure":
            k["lead"].append((r.start_us - hit.first_us) * sim_min)
    return {kind: _summary(k) for kind, k in found.items()}


def _share(xs: list[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _summary(k: dict[str, list[Any]]) -> dict[str, Any]:
    every = k["day1"] + k["later"]
    share, median = _share, _median
    return {
        "count": len(every), "caught": sum(every), "recall": share(every),
        "recall_day1": share(k["day1"]), "recall_after_day1": share(k["later"]),
        "median_delay_min": median(k["delay"]), "median_lead_min": median(k["lead"]),
    }  # fmt: skip


def fleet_quality(run: dict[str, Any], speedup: float) -> dict[str, Any]:
    """Recall and delay per fault kind, precision of alert episodes."""
    truth: list[TruthRecord] = run["truth"]
    eps = episodes(run["events"], run["last_us"])
    starts = [{"device_id": e.device_id, "ts_us": e.start_us, "metric": e.metric} for e in eps]
    true = [is_true(e, truth, int(SLACK_S * SECOND)) for e in eps]
    false_by: dict[str, int] = {}
    for e in (e for e, ok in zip(eps, true, strict=True) if not ok):
        key = f"{e.device_id.split('-')[0]}/{e.metric}/{e.detector}"
        false_by[key] = false_by.get(key, 0) + 1
    total = sum(run["readings"].values())
    return {
        "kinds": per_kind(truth, starts, speedup), "episodes": len(eps),
        "true_episodes": int(sum(true)), "precision": sum(true) / len(eps) if eps else None,
        "false_per_10k_readings": 1e4 * (len(eps) - sum(true)) / total,
        "false_by_series_detector": dict(sorted(false_by.items())),
        "silence_alerts_from_tick": sum(e.from_tick for e in eps),
        "readings": run["readings"], "seconds": run["seconds"],
    }  # fmt: skip


FLEET_DETECTORS = ("classic", "multivariate", "adaptive")  # "default" is "adaptive"


def fleet_spec(devices: int, seed: int) -> FleetSpec:
    """The benchmark's fleet: a third each machines, meters and thermostats."""
    third = devices // 3
    return FleetSpec(
        machines=third, meters=third, thermostats=devices - 2 * third,
        faulty_share=0.4, degrading_share=0.5, seed=seed, speedup=60.0,
    )  # fmt: skip


def fleet_run(spec: FleetSpec, days: float, detector: str) -> dict[str, Any]:
    """``fleet_quality`` of one detector over ``days`` simulated days of ``spec``."""
    steps = round(days * 86_400 / spec.speedup)
    return fleet_quality(run_fleet(spec, steps, detector), spec.speedup)


def fleet(args: argparse.Namespace) -> dict[str, Any]:
    spec = fleet_spec(args.devices, args.seed)
    steps = round(args.days * 86_400 / spec.speedup)
    out: dict[str, Any] = {"spec": {f: getattr(spec, f) for f in spec.__dataclass_fields__},
                           "steps": steps, "step_s": 1.0, "slack_s": SLACK_S}  # fmt: skip
    for name in FLEET_DETECTORS:
        out[name] = fleet_run(spec, args.days, name)
    report_fleet(out)
    return out


def report_fleet(r: dict[str, Any]) -> None:
    print(f"\nfleet: {r['spec']}, {r['steps']} steps")
    for name in FLEET_DETECTORS:
        q = r[name]
        print(f"{name}: {q['episodes']} alert episodes, precision {q['precision']:.3f}, "
              f"{q['false_per_10k_readings']:.2f} false per 10k readings, "
              f"{q['silence_alerts_from_tick']} from the clock tick")  # fmt: skip
        for kind, k in q["kinds"].items():
            lead = k["median_lead_min"]
            print(f"  {kind:22s} {k['caught']:4d}/{k['count']:<4d} recall {k['recall']:.3f} "
                  f"(day 1 {k['recall_day1']:.3f}, after {k['recall_after_day1']:.3f}), "
                  f"median delay {k['median_delay_min']:.1f} min"
                  + ("" if lead is None else f", lead {lead:.1f} min"))  # fmt: skip
        print(f"  false alerts by device kind/metric/detector: {q['false_by_series_detector']}")


# -- false alarms on clean series ------------------------------------------------------------
def false_alarms(args: argparse.Namespace) -> dict[str, Any]:
    ts, x = clean_series(args.series, args.readings, args.seed)
    stage = AnomalyStage(make_detector(getattr(args, "detector", "default")), AlertRule())
    ids = np.asarray([f"s{i:05d}" for i in range(args.series)], dtype=object)
    per, events = 10, []
    started = time.perf_counter()
    for i in range(0, args.readings, per):
        t, v = ts[i : i + per].ravel(), x[i : i + per].ravel()
        batch = Batch.from_arrays(np.tile(ids, len(t) // args.series),
                                  np.full(t.size, "value", dtype=object), t, v)  # fmt: skip
        events.append(stage.process(batch, int(t.max())))
        events.append(stage.tick(int(t.max()) + 30 * SECOND))
    seconds = time.perf_counter() - started
    eps = episodes(events, int(ts.max()))
    total = args.series * args.readings
    by: dict[str, int] = {}
    for e in eps:
        by[e.detector] = by.get(e.detector, 0) + 1
    out = {"series": args.series, "readings_per_series": args.readings, "readings": total,
           "alerts": len(eps), "alerts_per_10k_readings": 1e4 * len(eps) / total,
           "alerts_by_detector": by, "series_with_an_alert": len({e.device_id for e in eps}),
           "seconds": seconds}  # fmt: skip
    print(f"\nfalse alarms: {total:,} clean readings ({args.series} series), {len(eps)} alerts = "
          f"{out['alerts_per_10k_readings']:.3f} per 10k readings; by detector {by}; "
          f"{out['series_with_an_alert']} series with an alert ({seconds:.0f} s)")  # fmt: skip
    return out
