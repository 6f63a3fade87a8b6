"""Small generated files in the ETT and household-power formats, for the CLI and plot tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def ett_csv(path: Path, rows: int = 600, seed: int = 1) -> Path:
    """A daily ETT-format file (the 12/4/4-month split needs 600 rows): a weekly season per
    channel plus noise, so the ridge has a shape to learn and persistence does not."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    values = 5 + np.sin(2 * np.pi * t / 7 + np.arange(3)) + rng.normal(scale=0.3, size=(rows, 3))
    frame = pd.DataFrame(values, columns=["HUFL", "LUFL", "OT"])
    frame.insert(0, "date", pd.date_range("2021-01-01", periods=rows, freq="D").astype(str))
    frame.to_csv(path, index=False)
    return path


def household_csv(path: Path, days: int = 500, seed: int = 2) -> Path:
    """An hourly household-format file: a daily and a weekly cycle in kW around 1 kW, AR(1)
    noise, and a voltage column; stationary, so intervals should cover at the nominal rate."""
    rng = np.random.default_rng(seed)
    rows = 24 * days
    t = np.arange(rows)
    noise = np.zeros(rows)
    shocks = rng.normal(scale=0.1, size=rows)
    for i in range(1, rows):
        noise[i] = 0.6 * noise[i - 1] + shocks[i]
    power = 1 + 0.5 * np.sin(2 * np.pi * t / 24) + 0.2 * np.sin(2 * np.pi * t / 168) + noise
    frame = pd.DataFrame(
        {
            "Datetime": pd.date_range("2008-01-01", periods=rows, freq="h").astype(str),
            "Global_active_power": power,
            "Voltage": 240 + rng.normal(size=rows),
        }
    )
    frame.to_csv(path, index=False)
    return path
