"""Loaders: any file of the AI4I / C-MAPSS layout by path; malformed rows name file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.datasets import (
    AI4I_FEATURES,
    AI4I_LEAKING,
    CMAPSS_COLUMNS,
    load_cmapss,
    read_ai4i,
    read_cmapss,
    read_rul,
)
from iotml.errors import ConfigError, InvalidData


def test_ai4i_keeps_leaking_columns_out_of_x(ai4i_csv: Path) -> None:
    data = read_ai4i(ai4i_csv)
    assert list(data.X.columns) == list(AI4I_FEATURES)
    assert not set(AI4I_LEAKING) & set(data.X.columns)
    assert list(data.modes.columns) == ["TWF", "HDF", "PWF", "OSF", "RNF"]
    assert data.y.dtype == np.int64
    assert data.y.sum() == (data.modes[["PWF", "OSF"]].max(axis=1)).sum()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Torque [Nm]", "abc", "line 4: column 'Torque [Nm]' is 'abc'; expected a number"),
        ("Type", "X", "line 4: column 'Type' is 'X'; expected L, M or H"),
        ("Machine failure", "2", "line 4: column 'Machine failure' is '2'; expected 0 or 1"),
        ("Tool wear [min]", "", "line 4: column 'Tool wear [min]' is ''"),
    ],
)
def test_ai4i_bad_value_names_file_line_and_column(
    ai4i_csv: Path, column: str, value: str, message: str
) -> None:
    import pandas as pd

    frame = pd.read_csv(ai4i_csv, dtype=str)
    frame.loc[2, column] = value
    frame.to_csv(ai4i_csv, index=False)
    with pytest.raises(InvalidData, match=r"ai4i_like\.csv, " + _re(message)):
        read_ai4i(ai4i_csv)


def test_ai4i_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("Type,Torque [Nm]\nL,3\n")
    with pytest.raises(InvalidData, match="missing AI4I column"):
        read_ai4i(path)


def test_cmapss_reads_any_subset_by_path(cmapss_dir: Path) -> None:
    data = load_cmapss(cmapss_dir, "FD003")
    assert tuple(data.train.columns) == CMAPSS_COLUMNS
    assert data.train["unit"].nunique() == 12
    assert data.test["unit"].nunique() == data.rul.size == 6
    assert data.train["cycle"].dtype == np.int64


def test_cmapss_wrong_field_count_names_line(cmapss_dir: Path) -> None:
    path = cmapss_dir / "train_FD003.txt"
    lines = path.read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:-1])
    path.write_text("\n".join(lines))
    with pytest.raises(InvalidData, match=r"train_FD003\.txt, line 7: 25 fields; expected 26"):
        read_cmapss(path)


def test_cmapss_non_numeric_names_line_and_field(cmapss_dir: Path) -> None:
    path = cmapss_dir / "test_FD003.txt"
    lines = path.read_text().splitlines()
    fields = lines[3].split()
    fields[7] = "n/a"
    lines[3] = " ".join(fields)
    path.write_text("\n".join(lines))
    with pytest.raises(InvalidData, match=r"line 4, field 8: 'n/a' is not a finite number"):
        read_cmapss(path)


def test_cmapss_bad_unit_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("0 1 " + " ".join(["1"] * 24) + "\n")
    with pytest.raises(InvalidData, match="must be positive integers"):
        read_cmapss(path)
    path.write_text("\n\n")
    with pytest.raises(InvalidData, match="no data rows"):
        read_cmapss(path)


def test_rul_file(tmp_path: Path) -> None:
    path = tmp_path / "RUL_FD004.txt"
    path.write_text("112 \n98\n\n")
    assert read_rul(path).tolist() == [112.0, 98.0]
    path.write_text("1 2\n")
    with pytest.raises(InvalidData, match="line 1: 2 fields; expected 1"):
        read_rul(path)
    path.write_text("-3\n")
    with pytest.raises(InvalidData, match="negative"):
        read_rul(path)


def test_rul_count_must_match_test_units(cmapss_dir: Path) -> None:
    (cmapss_dir / "RUL_FD003.txt").write_text("5\n")
    with pytest.raises(InvalidData, match="1 RUL values for 6 test units"):
        load_cmapss(cmapss_dir, "FD003")
    with pytest.raises(ConfigError, match="subset"):
        load_cmapss(cmapss_dir, "../FD003")
    with pytest.raises(InvalidData, match="cannot read"):
        load_cmapss(cmapss_dir, "FD009")


def _re(text: str) -> str:
    import re

    return re.escape(text)
