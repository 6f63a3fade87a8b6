"""What the live demo draws: a dashboard while it runs, and the report when it ends."""

from __future__ import annotations

__all__ = ["live_panel", "summary_tables"]

from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from iotml.cli.live import NOT_ALERTS, LiveRun
from iotml.sim.score import TruthHit, event_rows, score_truth
from iotml.sim.truth import TruthRecord, iso_us
from iotml.types import Events


def _kinds(run: LiveRun) -> str:
    counts = Counter(run.fleet.kind_of(d).name for d in run.fleet.devices)
    via = {"machine": "MQTT, SenML JSON", "thermostat": "MQTT, JSON", "meter": "HTTP, SenML CBOR"}
    return " · ".join(f"{n} {kind}s ({via[kind]})" for kind, n in sorted(counts.items()))


def live_panel(run: LiveRun) -> RenderableType:
    """The dashboard: throughput, rejects, alerts and the latest alerts."""
    m = run.metrics
    stats = Table.grid(padding=(0, 3))
    for _ in range(4):
        stats.add_column(justify="right")
    rejected = sum(m.rejected.values())
    stats.add_row(
        f"[bold]{run.readings_per_s():,.0f}[/] readings/s",
        f"[bold]{m.stored:,}[/] stored",
        f"[bold]{m.received:,}[/] messages",
        f"[bold]{len(run.fleet.devices)}[/] devices",
    )
    stats.add_row(
        f"[bold red]{rejected:,}[/] rejected",
        f"[bold yellow]{m.events:,}[/] events",
        f"queue {m.queue_depth:,}",
        f"flush {m.last_batch_s * 1000:,.0f} ms",
    )
    alerts = Table(box=None, header_style="dim", expand=True)
    for name in ("time", "device", "alert"):
        alerts.add_column(name)
    for e in list(run.recent)[::-1]:
        ts: Any = e["ts"]
        alerts.add_row(
            ts.strftime("%H:%M:%S"), escape(str(e["device_id"])), escape(str(e["message"]))
        )
    done = min(run.elapsed_s, run.duration_s)
    bar = ProgressBar(total=run.duration_s, completed=done, width=60)
    title = f"iotml demo — {done:,.0f} / {run.duration_s:,.0f} s"
    body = Group(_kinds(run), "", stats, "", bar, "", alerts)
    return Panel(body, title=title, subtitle=f"HTTP {run.http_url} · MQTT {run.mqtt_url}")


def _truth_table(hits: list[TruthHit]) -> Table:
    table = Table(
        title="injected by the simulation, and what the alerts caught", header_style="bold"
    )
    for name in ("what", "injected", "caught", "first caught / warning before failure"):
        table.add_column(name)
    by_kind: dict[str, list[TruthHit]] = {}
    for hit in hits:
        key = "failure" if hit.record.type == "failure" else hit.record.kind
        if key != "malformed":
            by_kind.setdefault(key, []).append(hit)
    for kind, group in sorted(by_kind.items()):
        caught = [h for h in group if h.caught]
        if kind == "failure":
            leads = sorted(h.lead_s for h in caught if h.lead_s is not None)
            note = f"median {leads[len(leads) // 2]:.0f} s before" if leads else "—"
        else:
            note = iso_us(min(h.first_us for h in caught if h.first_us))[11:19] if caught else "—"
        table.add_row(kind, str(len(group)), str(len(caught)), note)
    return table


def _unexplained(events: Events, truth: list[TruthRecord], slack_us: int = 5_000_000) -> int:
    """Alerts (starts) that fall in no injected fault of their device: false alarms, or
    normal behaviour the detectors find surprising."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for r in truth:
        if r.type in ("anomaly", "degradation", "failure"):
            spans.setdefault(r.device_id, []).append((r.start_us, r.end_us + slack_us))
    kinds = events.table.column("kind").to_pylist()
    count = 0
    for kind, e in zip(kinds, event_rows(events), strict=True):
        if kind in ("anomaly-start", "out-of-range"):
            inside = any(lo <= e["ts_us"] < hi for lo, hi in spans.get(e["device_id"], []))
            count += not inside
    return count


def summary_tables(run: LiveRun, dead_letters: int) -> list[RenderableType]:
    """The end-of-run report: what was sent and stored, what was caught."""
    m, sim = run.metrics, run.sim
    ingest = Table(title="ingested", header_style="bold")
    for name in ("sent", "received", "stored", "rejected", "dead letters", "events"):
        ingest.add_column(name, justify="right")
    ingest.add_row(
        f"{sim.messages:,} messages / {sim.readings:,} readings",
        f"{m.received:,}",
        f"{m.stored:,}",
        f"{sum(m.rejected.values()):,}",
        f"{dead_letters:,}",
        f"{m.events:,}",
    )
    reasons = Table(title="why readings were rejected", header_style="bold")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for reason, n in m.rejected.most_common(5):
        reasons.add_row(escape(reason), f"{n:,}")
    events = run.all_events()
    hits = score_truth(list(run.fleet.truth), event_rows(events))
    kinds = Counter(k for k in events.table.column("kind").to_pylist() if k not in NOT_ALERTS)
    alerts = Table(title="alerts raised", header_style="bold")
    alerts.add_column("kind")
    alerts.add_column("count", justify="right")
    for kind, n in kinds.most_common():
        alerts.add_row(kind, f"{n:,}")
    table = _truth_table(hits)
    unexplained = _unexplained(events, list(run.fleet.truth))
    table.add_row("[dim]alerts in no injected fault[/]", "—", str(unexplained), "")
    return [ingest, reasons, alerts, table]
