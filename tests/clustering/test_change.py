"""BehaviourChange: an event only when a device's cluster moves and stays moved."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from iotml.clustering.change import KIND, BehaviourChange
from iotml.errors import ConfigError, InvalidData

DAY_US = 86_400_000_000


def _days(n: int) -> list[int]:
    return [d * DAY_US for d in range(n)]


def test_first_assignment_sets_the_baseline_without_event() -> None:
    change = BehaviourChange()
    assert change.update(["a"], [0], [4]).table.num_rows == 0
    assert change.baseline("a") == 4
    assert change.baseline("b") is None


def test_single_outliers_and_flicker_raise_nothing() -> None:
    change = BehaviourChange(persist=3)
    ev = change.update(["a"] * 9, _days(9), [0, 1, 0, 2, 2, 0, 1, 2, 1])
    assert ev.table.num_rows == 0
    assert change.baseline("a") == 0


def test_a_persistent_move_raises_one_event() -> None:
    change = BehaviourChange(persist=3)
    ev = change.update(["a"] * 8, _days(8), [0, 0, 1, 1, 1, 1, 1, 1])
    rows = ev.table.to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == KIND == "behaviour_change"
    assert row["device_id"] == "a"
    assert row["severity"] == "info"
    assert row["ts"] == datetime.fromtimestamp(4 * 86_400, tz=UTC)  # the confirming day
    detail = orjson.loads(row["detail"])
    assert detail["from"] == 0
    assert detail["to"] == 1
    assert detail["assignments"] == 3
    assert detail["since"].startswith("1970-01-03")
    assert change.baseline("a") == 1
    back = change.update(["a"] * 3, [d * DAY_US for d in (8, 9, 10)], [0, 0, 0])
    assert orjson.loads(back.table.column("detail")[0].as_py())["to"] == 0


def test_devices_are_independent_and_columns_accept_datetime64() -> None:
    change = BehaviourChange(persist=2)
    t = np.array(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03",
                  "2024-01-03"], dtype="datetime64[D]")  # fmt: skip
    ev = change.update(["a", "b", "a", "b", "a", "b"], t, np.array([0, 0, 1, 0, 1, 0]))
    assert ev.table.column("device_id").to_pylist() == ["a"]
    assert ev.table.column("ts").to_pylist()[0].date().isoformat() == "2024-01-03"
    assert (change.baseline("a"), change.baseline("b")) == (1, 0)


def test_bad_assignments_are_counted_not_fatal() -> None:
    change = BehaviourChange(persist=2)
    ev = change.update(["a"] * 6, [0, DAY_US, 2 * DAY_US, DAY_US, 3 * DAY_US, 4 * DAY_US],
                       [0, -1, 1, 1, 1.5, 1])  # fmt: skip
    assert change.rejected == 3  # a negative cluster, a time going back, a fraction
    assert ev.table.num_rows == 1
    assert change.baseline("a") == 1


def test_a_repeated_day_or_a_flag_is_not_an_assignment() -> None:
    change = BehaviourChange(persist=3)
    ev = change.update(["d"] * 4, [0, DAY_US, DAY_US, DAY_US], [0, 1, 1, 1])
    assert ev.table.num_rows == 0  # one day fed three times is one assignment, not three
    assert change.rejected == 2
    assert change.observe("e", 0, True) is None  # a bool is not a cluster number
    assert change.baseline("e") is None
    assert change.rejected == 3


def test_state_round_trip() -> None:
    change = BehaviourChange(persist=2)
    change.update(["a", "a"], _days(2), [0, 1])
    restored = BehaviourChange(persist=2)
    restored.load_state(change.state())
    ev = restored.update(["a"], [2 * DAY_US], [1])
    assert ev.table.num_rows == 1
    assert restored.baseline("a") == 1
    with pytest.raises(InvalidData):
        restored.load_state(b"not json")
    with pytest.raises(InvalidData):
        restored.load_state(b'{"a": [1]}')


def test_bad_settings_and_columns() -> None:
    with pytest.raises(ConfigError):
        BehaviourChange(persist=0)
    with pytest.raises(InvalidData, match="one of each"):
        BehaviourChange().update(["a"], [0, 1], [0, 1])
