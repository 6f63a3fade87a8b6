"""Forecast pictures: the plot command and the plotting functions write non-empty PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.forecast.synthetic import ett_csv, household_csv
from typer.testing import CliRunner

import iotml.cli.forecast_eval  # noqa: F401 - importing registers the commands
from iotml.cli import app
from iotml.errors import ConfigError
from iotml.forecast.plots import plot_forecast, plot_lead_time_errors

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def test_plot_command_writes_both_pictures(tmp_path: Path) -> None:
    data = ett_csv(tmp_path / "mine.csv")
    out = tmp_path / "pictures"
    args = ["--dataset", "ett", "--file", str(data), "--lookback", "14", "--horizon", "7"]
    result = runner.invoke(app, ["forecast", "plot", *args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [
        "mine_L14_H7_forecast.png",
        "mine_L14_H7_lead_time_mse.png",
    ]
    assert all(_png(p) for p in written)
    assert all(str(p) in result.stdout for p in written)


def test_plot_command_household_and_a_chosen_window(tmp_path: Path) -> None:
    data = household_csv(tmp_path / "house.csv", days=500)
    result = runner.invoke(app, ["forecast", "plot", "--dataset", "household", "--file",
                                 str(data), "--output", str(tmp_path), "--window", "0",
                                 "--channel", "Voltage"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "house_L168_H24_forecast.png")


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--channel", "nope"], "--channel 'nope'"), (["--window", "500"], "--window 500")],
)
def test_plot_command_rejects_a_bad_choice(tmp_path: Path, extra: list[str], message: str) -> None:
    data = ett_csv(tmp_path / "mine.csv")
    result = runner.invoke(app, ["forecast", "plot", "--dataset", "ett", "--file", str(data),
                                 "--lookback", "14", "--horizon", "7", "-o", str(tmp_path),
                                 *extra])  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output


def test_plot_functions(tmp_path: Path) -> None:
    path = plot_forecast(
        ([0, 1, 2], [1.0, 2.0, 1.5]), ([3, 4], [2.0, 2.5]), {"ridge": [2.1, 2.2]},
        tmp_path / "f.png", bands={0.8: ([1.8, 1.9], [2.4, 2.5]), 0.95: ([1.5, 1.6], [2.7, 2.8])},
        band_of="ridge",
    )  # fmt: skip
    assert _png(path)
    errors = plot_lead_time_errors({"ridge": [0.1, 0.2, 0.3]}, tmp_path / "sub" / "e.png")
    assert _png(errors)
    with pytest.raises(ConfigError, match="forecast 'ridge' has shape"):
        plot_forecast(([0], [1.0]), ([1, 2], [1.0, 2.0]), {"ridge": [1.0]}, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="at least one method"):
        plot_lead_time_errors({}, tmp_path / "y.png")
