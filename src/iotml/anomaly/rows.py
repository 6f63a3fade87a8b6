"""Score a table row by row (``iotml detect``): history files and labelled benchmarks.

The numeric columns of each row are one device's channels at one time. They go to the
detector as readings in row order — a row's score depends only on it and earlier rows —
and each row's score is its channels' highest, with the channel and detector behind it.
``is_anomaly`` comes from an :class:`~iotml.anomaly.AlertRule` over the row scores, so
hysteresis and minimum duration apply to the file as they would live, and ``onset`` is the
score at the first row of each alert (0 elsewhere): one detection per alert, as NAB counts
detections — an evaluation that thresholds every row's score counts each row of a long
anomaly after the first as a false positive.

Rows the file cannot time (an unreadable timestamp) and rows whose time goes backwards
are not scored (score 0, not anomalous) and are reported; cells that are not numbers are
left out of their row.

>>> from iotml.codecs.timed import read_timed_csv
>>> from iotml.anomaly import RobustBaseline
>>> text = "ts,a,b\\n" + "".join(f"{i},{i % 3},{1 + i % 2}\\n" for i in range(1, 61))
>>> text += "61,40,1\\n"
>>> rows = read_timed_csv(text.encode())
>>> out = score_rows(rows, ["a", "b"], RobustBaseline(warmup=20), AlertRule())
>>> out.is_anomaly[-1], out.source[-1]
(np.True_, 'a/robust')
"""

from __future__ import annotations

__all__ = ["ReadingScores", "RowScores", "classification", "score_readings", "score_rows"]

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iotml.anomaly._series import SeriesIndex
from iotml.anomaly.alerts import AlertRule
from iotml.anomaly.base import Detector
from iotml.codecs.common import Rejected
from iotml.codecs.timed import TimedRows
from iotml.errors import InvalidData
from iotml.types import Batch


@dataclass(frozen=True, slots=True)
class RowScores:
    """Per row: ``score`` in [0, 1], ``is_anomaly``, ``source`` (``metric/detector``),
    ``scored`` (False for rows that were not scored), ``onset`` (the score at each alert's
    first row, 0 elsewhere); plus why rows were skipped."""

    score: npt.NDArray[np.float64]
    is_anomaly: npt.NDArray[np.bool_]
    source: npt.NDArray[np.object_]
    scored: npt.NDArray[np.bool_]
    episodes: int
    onset: npt.NDArray[np.float64]
    skipped: list[Rejected] = field(default_factory=list)


def _in_order(rows: TimedRows) -> tuple[npt.NDArray[np.bool_], list[Rejected]]:
    """Rows with a time, not earlier than the latest time before them."""
    ok = rows.ok.copy()
    latest = np.maximum.accumulate(np.where(ok, rows.ts_us, np.iinfo(np.int64).min))
    back = ok & (rows.ts_us < np.r_[np.iinfo(np.int64).min, latest[:-1]])
    skipped = [
        Rejected(
            f"row {int(rows.rows[i])}: its time is earlier than an earlier row's; "
            "rows must be in time order",
            b"",
            int(rows.rows[i]),
        )
        for i in np.flatnonzero(back)
    ]
    return ok & ~back, skipped


def score_rows(
    rows: TimedRows,
    columns: Sequence[str],
    detector: Detector,
    rule: AlertRule,
    *,
    device: str = "input",
) -> RowScores:
    """Score every row of ``rows`` over ``columns``; see the module docstring."""
    if not columns:
        raise InvalidData("there are no numeric columns to score")
    usable, skipped = _in_order(rows)
    n, k = rows.table.num_rows, len(columns)
    values = np.zeros((n, k))
    keep = np.zeros((n, k), dtype=bool)
    for j, name in enumerate(columns):
        col = rows.numbers(name)
        values[:, j], keep[:, j] = col.values, col.present & ~col.bad & usable
    row_of, chan = np.nonzero(keep)  # row-major: a row's channels together, rows in order
    batch = Batch.from_arrays(
        np.full(row_of.size, device, dtype=object),
        np.asarray(columns, dtype=object)[chan],
        rows.ts_us[row_of],
        values[row_of, chan],
    )
    scores = detector.update(batch)
    score = np.zeros(n)
    np.maximum.at(score, row_of, scores.score)
    source = np.full(n, "", dtype=object)
    best = np.zeros(n, dtype=np.int64) - 1
    # per row, its highest reading first; ties (a multivariate row scores all its readings
    # alike) go to the larger raw statistic, a channel's share of the row's for PCA
    order = np.lexsort((-scores.raw, -scores.score, row_of))
    first = order[np.r_[True, row_of[order][1:] != row_of[order][:-1]]]
    best[row_of[first]] = first
    has = best >= 0
    source[has] = [f"{columns[chan[i]]}/{scores.source[i]}" for i in best[has]]
    scored = np.zeros(n, dtype=bool)
    scored[row_of] = True
    timeline = Batch.from_arrays(
        np.full(int(scored.sum()), device, dtype=object),
        np.full(int(scored.sum()), "row", dtype=object),
        rows.ts_us[scored],
        score[scored],
    )
    events, inside = rule.apply(timeline, score[scored], source[scored])
    is_anomaly = np.zeros(n, dtype=bool)
    is_anomaly[scored] = inside
    onset = np.zeros(n)
    onset[scored] = _onsets(np.zeros(inside.size, dtype=np.int64), inside, score[scored])
    starts = int(
        np.sum(events.table.column("kind").to_numpy(zero_copy_only=False) == "anomaly-start")
    )
    return RowScores(score, is_anomaly, source, scored, starts, onset, skipped)


def _onsets(series: npt.NDArray[np.int64], inside: npt.NDArray[np.bool_],
            score: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:  # fmt: skip
    """The score at each alert's first reading, 0 elsewhere; readings in time order,
    ``series`` numbering their series (a reading opens an alert when it is inside one and
    its series' previous reading was not)."""
    order = np.argsort(series, kind="stable")  # each series together, still in time order
    ins, ser = inside[order], series[order]
    first = ins & ~np.r_[False, ins[:-1] & (ser[1:] == ser[:-1])]
    out = np.zeros(score.size)
    out[order[first]] = score[order[first]]
    return out


@dataclass(frozen=True, slots=True)
class ReadingScores:
    """Per reading of a batch (in the batch's order): ``score``, ``is_anomaly``, ``source``
    (the detector behind the score), ``onset`` (the score at each alert's first reading of
    its series, 0 elsewhere); ``episodes``: alerts the rule raised."""

    score: npt.NDArray[np.float64]
    is_anomaly: npt.NDArray[np.bool_]
    source: npt.NDArray[np.object_]
    episodes: int
    onset: npt.NDArray[np.float64]


def score_readings(batch: Batch, detector: Detector, rule: AlertRule) -> ReadingScores:
    """Score readings of any series, as the live pipeline would have: in time order (a
    reading's score depends only on it and the earlier readings of its series), alerts
    from ``rule``. Results come back in the batch's own order.

    >>> import numpy as np
    >>> from iotml.anomaly import RobustBaseline
    >>> v = np.r_[np.tile([1.0, 2.0], 30), 40.0]
    >>> b = Batch.from_arrays(["d"] * 61, ["t"] * 61, np.arange(61)[::-1].copy(), v[::-1].copy())
    >>> out = score_readings(b, RobustBaseline(warmup=20), AlertRule())
    >>> bool(out.is_anomaly[0]), int(out.is_anomaly.sum())  # the last in time comes first
    (True, 1)
    """
    order = np.argsort(batch.ts_us, kind="stable")
    in_order = np.array_equal(order, np.arange(len(batch)))
    timed = batch if in_order else Batch.from_arrow(batch.table.take(pa.array(order)))
    scores = detector.update(timed)
    events, inside = rule.apply(timed, scores.score, scores.source)
    kinds = events.table.column("kind").to_numpy(zero_copy_only=False)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    onset = _onsets(SeriesIndex().slots(timed.device_id, timed.metric), inside, scores.score)
    return ReadingScores(
        scores.score[back], inside[back], scores.source[back],
        int(np.sum(kinds == "anomaly-start")), onset[back],
    )  # fmt: skip


def classification(truth: npt.ArrayLike, predicted: npt.ArrayLike) -> dict[str, float]:
    """Point-wise precision, recall, F1, false-alarm rate (FAR) and missed-alarm rate (MAR).

    >>> classification([0, 0, 1, 1], [0, 1, 1, 0])["f1"]
    0.5
    """
    y, p = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, fp = int(np.sum(y & p)), int(np.sum(~y & p))
    fn, tn = int(np.sum(y & ~p)), int(np.sum(~y & ~p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "far": fp / (fp + tn) if fp + tn else 0.0, "mar": fn / (fn + tp) if fn + tp else 0.0,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }  # fmt: skip
