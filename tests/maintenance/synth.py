"""Small synthetic data in the public formats: AI4I-like rows, C-MAPSS-like engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

AI4I_HEADER = (
    "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],"
    "Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF"
)


def ai4i_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """AI4I-like rows whose failures follow power / strain rules (learnable)."""
    rng = np.random.default_rng(seed)
    types = rng.choice(["L", "M", "H"], size=n, p=[0.5, 0.3, 0.2])
    air = rng.normal(300, 2, n).round(1)
    proc = (air + rng.normal(10, 1, n)).round(1)
    rpm = rng.normal(1500, 150, n).round()
    torque = rng.normal(40, 10, n).clip(5, 75).round(1)
    wear = rng.integers(0, 250, n).astype(float)
    power = torque * rpm * 2 * np.pi / 60
    limit = np.select([types == "L", types == "M"], [11000.0, 12000.0], 13000.0)
    pwf = ((power < 3500) | (power > 9000)).astype(int)
    osf = (wear * torque > limit).astype(int)
    fail = pwf | osf
    return pd.DataFrame(
        {
            "UDI": np.arange(1, n + 1),
            "Product ID": [f"{t}{i}" for i, t in enumerate(types)],
            "Type": types,
            "Air temperature [K]": air,
            "Process temperature [K]": proc,
            "Rotational speed [rpm]": rpm,
            "Torque [Nm]": torque,
            "Tool wear [min]": wear,
            "Machine failure": fail,
            "TWF": 0,
            "HDF": 0,
            "PWF": pwf,
            "OSF": osf,
            "RNF": 0,
        }
    )


def engines(units: int = 12, seed: int = 0, conditions: int = 1, cut: bool = False) -> pd.DataFrame:
    """C-MAPSS-like run-to-failure histories: sensors drift exponentially towards failure.

    The operating points are the same for every seed, as in one real fleet.
    """
    rng = np.random.default_rng(seed)
    rows = []
    ops = np.random.default_rng(99).uniform(0, 40, size=(max(conditions, 1), 3)).round(2)
    for unit in range(1, units + 1):
        life = int(rng.integers(120, 220))
        length = int(rng.integers(30, life)) if cut else life
        cycle = np.arange(1, length + 1)
        wear = np.exp((cycle - life) / 40.0)
        op = ops[rng.integers(0, len(ops), size=length)]
        base = np.zeros((length, 21))
        base[:, :5] = 100 + op[:, :1] * 2  # operating point shifts the levels
        base[:, 5:10] = 50 + 5 * wear[:, None] + op[:, 1:2]
        base[:, 10:15] = 20 - 3 * wear[:, None]
        base[:, 15:] = 7.0  # constant sensors
        base[:, :15] += rng.normal(0, 0.3, size=(length, 15))
        block = np.column_stack([np.full(length, unit), cycle, op, base])
        rows.append(block)
    data = np.vstack(rows)
    columns = ["unit", "cycle", "op1", "op2", "op3", *[f"s{i}" for i in range(1, 22)]]
    frame = pd.DataFrame(data, columns=columns)
    frame["unit"] = frame["unit"].astype(np.int64)
    frame["cycle"] = frame["cycle"].astype(np.int64)
    return frame


def write_cmapss(frame: pd.DataFrame, path: Path) -> Path:
    """Write in the C-MAPSS text layout (space-separated, trailing spaces)."""
    lines = [" ".join(f"{v:g}" for v in row) + "  " for row in frame.to_numpy()]
    path.write_text("\n".join(lines) + "\n")
    return path
