"""Fixtures: synthetic AI4I / C-MAPSS files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .synth import ai4i_frame, engines, write_cmapss


@pytest.fixture
def ai4i_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ai4i_like.csv"
    ai4i_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def cmapss_dir(tmp_path: Path) -> Path:
    """An 'FD003'-like subset: 12 training engines, 6 cut test engines, their true RUL."""
    train = engines(12, seed=1)
    full = engines(6, seed=2)
    rng = np.random.default_rng(3)
    parts, rul = [], []
    for _unit, history in full.groupby("unit"):
        keep = int(rng.integers(40, len(history) - 5))
        parts.append(history.iloc[:keep])
        rul.append(len(history) - keep)
    write_cmapss(train, tmp_path / "train_FD003.txt")
    write_cmapss(pd.concat(parts), tmp_path / "test_FD003.txt")
    (tmp_path / "RUL_FD003.txt").write_text("".join(f"{r} \n" for r in rul))
    return tmp_path
