"""SeriesDetector's 2-D fields (``widths``) and the round timestamps ``_step`` sees."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from iotml.anomaly import SeriesDetector
from iotml.errors import ConfigError
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Slots(SeriesDetector):
    """Keeps each series' last reading in a column chosen by its timestamp (seconds mod k)."""

    name = "slots"
    fields: ClassVar[dict[str, float]] = {"last": -1.0, "grid": -1.0}

    def __init__(self, k: int = 3) -> None:
        super().__init__(warmup=1, widths={"grid": k})
        self.k = k
        self.params |= {"k": k}
        self.seen_ts: list[I64] = []

    def _step(self, s: I64, x: F64, dt_s: F64) -> F64:
        self.seen_ts.append(self._ts_us.copy())
        col = (self._ts_us // 10**6) % self.k
        raw = self.a["grid"][s, col].copy()
        self.a["grid"][s, col] = x
        self.a["last"][s] = x
        return np.abs(raw)

    def _p(self, raw: F64) -> F64:
        return np.ones_like(raw)


def batch(n_series: int, n: int, offset: float = 0.0) -> Batch:
    ids = [f"d{i}" for i in range(n_series) for _ in range(n)]
    ts = np.tile(np.arange(n) * 10**6, n_series)
    values = offset + np.arange(n_series * n, dtype=np.float64)
    return Batch.from_arrays(ids, ["m"] * len(ids), ts, values)


def test_wide_fields_are_2d_and_survive_growth() -> None:
    det = Slots(k=3)
    det.update(batch(2, 4))
    grid = det.a["grid"]
    assert grid.shape[1:] == (3,)
    np.testing.assert_array_equal(grid[:2], [[3.0, 1.0, 2.0], [7.0, 5.0, 6.0]])
    before = grid[:2].copy()
    det.update(batch(200, 1, offset=1000.0))  # 198 new series: the arrays grow
    assert det.a["grid"].shape[0] >= 200
    np.testing.assert_array_equal(det.a["grid"][:2, 1:], before[:, 1:])
    assert (det.a["grid"][2:200, 1:] == -1.0).all()  # new rows start at the initial value


def test_wide_fields_save_and_restore_exactly() -> None:
    det = Slots(k=4)
    det.update(batch(5, 9))
    restored = Slots(k=4)
    restored.load_state(det.state())
    n = det.n_series
    np.testing.assert_array_equal(restored.a["grid"][:n], det.a["grid"][:n])
    follow = batch(5, 3, offset=0.5)
    np.testing.assert_array_equal(det.update(follow).raw, restored.update(follow).raw)
    with pytest.raises(ConfigError):
        Slots(k=5).load_state(det.state())  # another width is another detector


def test_memory_counts_every_column() -> None:
    assert Slots(k=4).nbytes_per_series() == 8 * (1 + 4 + 2)


def test_step_sees_the_timestamps_of_its_round() -> None:
    det = Slots()
    b = Batch.from_arrays(["a", "b", "a"], ["m"] * 3, np.array([5, 7, 9]) * 10**6, [1.0, 2, 3])
    det.update(b)
    assert [t.tolist() for t in det.seen_ts] == [[5 * 10**6, 7 * 10**6], [9 * 10**6]]


@pytest.mark.parametrize("widths", [{"nope": 2}, {"grid": 0}, {"grid": 1.5}])
def test_bad_widths_are_refused(widths: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="widths"):
        SeriesDetector.__init__(Slots.__new__(Slots), widths=widths)
