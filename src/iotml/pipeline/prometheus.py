"""Pipeline counters in the Prometheus text exposition format (``GET /metrics``).

>>> from iotml.pipeline.engine import PipelineMetrics
>>> m = PipelineMetrics(received=3, stored=2)
>>> m.rejected["field 'v'"] += 1
>>> print(render(m).splitlines()[2])
iotml_messages_received_total 3
"""

from __future__ import annotations

__all__ = ["render"]

from iotml.pipeline.engine import PipelineMetrics
from iotml.store import DeadLetterStats

_SERIES = (
    ("iotml_messages_received_total", "counter", "Messages submitted to the pipeline.", "received"),
    ("iotml_readings_stored_total", "counter", "Readings written to the store.", "stored"),
    (
        "iotml_readings_duplicate_total",
        "counter",
        "Readings already stored with the same value (ignored).",
        "duplicates",
    ),
    (
        "iotml_readings_conflict_total",
        "counter",
        "Readings whose key is stored with another value (dead-lettered).",
        "conflicts",
    ),
    ("iotml_events_total", "counter", "Events raised by stages.", "events"),
    ("iotml_batches_total", "counter", "Micro-batches flushed.", "batches"),
    ("iotml_queue_depth", "gauge", "Messages waiting at the last flush.", "queue_depth"),
    ("iotml_batch_seconds", "gauge", "Duration of the last flush.", "last_batch_s"),
    (
        "iotml_batches_failed_total",
        "counter",
        "Flushes that raised (see the log).",
        "failed_batches",
    ),
    ("iotml_stage_errors_total", "counter", "Stage calls that raised.", "stage_errors"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_DEAD_LETTERS = (
    ("iotml_dead_letters", "gauge", "Dead letters kept.", "rows"),
    ("iotml_dead_letter_bytes", "gauge", "Bytes of payload and reason dead letters keep.", "bytes"),
    (
        "iotml_dead_letters_evicted_total",
        "counter",
        "Dead letters the quota evicted, earliest first.",
        "evicted_rows",
    ),
    (
        "iotml_dead_letter_bytes_evicted_total",
        "counter",
        "Bytes of the dead letters the quota evicted.",
        "evicted_bytes",
    ),
)


def render(metrics: PipelineMetrics, dead_letters: DeadLetterStats | None = None) -> str:
    """The metrics as Prometheus text, version 0.0.4, with the store's dead letters if given."""
    lines = _series(_SERIES, metrics)
    name = "iotml_rejected_total"
    lines += [f"# HELP {name} Rejected payloads and records, by reason.", f"# TYPE {name} counter"]
    lines += [f'{name}{{reason="{_label(r)}"}} {n}' for r, n in sorted(metrics.rejected.items())]
    if dead_letters is not None:
        lines += _series(_DEAD_LETTERS, dead_letters)
    return "\n".join(lines) + "\n"


def _series(table: tuple[tuple[str, str, str, str], ...], source: object) -> list[str]:
    """HELP, TYPE and value lines of each series, the value read from ``source``."""
    lines = []
    for name, kind, help_text, attr in table:
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} {kind}",
            f"{name} {getattr(source, attr)}",
        ]
    return lines
