"""``iotml forecast evaluate`` on generated ETT-format and household-format files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from tests.forecast.synthetic import ett_csv, household_csv
from typer.testing import CliRunner

import iotml.cli.forecast_eval as forecast_eval
from iotml.cli import app

runner = CliRunner()
BASELINES = ("persistence", "seasonal_24h", "seasonal_168h", "ridge")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forecast-files")
    return {"ett": ett_csv(root / "mine_ett.csv"), "household": household_csv(root / "house.csv")}


def _cli(*args: str) -> Any:
    return runner.invoke(app, ["forecast", *args])


def _json(*args: str) -> dict[str, Any]:
    result = _cli(*args, "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = orjson.loads(result.stdout)  # the whole of stdout is one object
    return body


def _finite(values: dict[str, Any]) -> bool:
    return all(math.isfinite(v) for v in values.values() if isinstance(v, float))


def test_evaluate_ett_json_on_any_file(files: dict[str, Path]) -> None:
    body = _json("evaluate", "--dataset", "ett", "--file", str(files["ett"]),
                 "--lookback", "14", "--horizon", "7")  # fmt: skip
    assert body["dataset"] == "ett"
    assert body["channels"] == ["HUFL", "LUFL", "OT"]
    assert (body["lookback"], body["horizon"], body["test_windows"]) == (14, 7, 120 - 7 + 1)
    for method in BASELINES:
        assert {"mse", "mae"} <= set(body[method])
        assert _finite(body[method])
    assert body["ridge"]["mse"] < 0.5 * body["persistence"]["mse"]
    ridge = body["ridge"]
    assert 0 < ridge["coverage_80"] < ridge["coverage_95"] <= 1
    assert 0 < ridge["width_80"] < ridge["width_95"]


def test_evaluate_ett_prints_a_table(files: dict[str, Path]) -> None:
    result = _cli("evaluate", "--dataset", "ett", "--file", str(files["ett"]),
                  "--lookback", "14", "--horizon", "7")  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("mine_ett.csv", "persistence", "ridge", "MSE", "MAE", "cover 80%"):
        assert text in result.stdout


def test_evaluate_household_reports_kw_at_the_horizon(files: dict[str, Path]) -> None:
    body = _json("evaluate", "--dataset", "household", "--file", str(files["household"]))
    assert (body["lookback"], body["horizon"]) == (168, 24)
    assert body["target"] == "Global_active_power"
    assert body["test_windows"] == 365 * 24 - 24 + 1
    for method in BASELINES:
        row = body[method]
        assert {"mse", "mae", "target_mae_kw", "target_mae_kw_last"} <= set(row)
        assert _finite(row)
    ridge = body["ridge"]
    assert ridge["target_mae_kw"] < body["seasonal_24h"]["target_mae_kw"]
    assert ridge["target_mae_kw"] < body["persistence"]["target_mae_kw"]
    assert abs(ridge["target_coverage_80"] - 0.80) < 0.03
    assert abs(ridge["target_coverage_95"] - 0.95) < 0.03
    table = _cli("evaluate", "--dataset", "household", "--file", str(files["household"]))
    assert table.exit_code == 0
    assert "MAE kW @24" in table.stdout


def _small_neural(seed: int) -> Any:
    from iotml.forecast.neural import NeuralForecaster

    return NeuralForecaster(hidden=16, max_epochs=2, seed=seed, threads=1)


@pytest.mark.parametrize("dataset", ["household", "ett"])
def test_neural_entry_is_trained_and_scored(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, dataset: str
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(forecast_eval, "_neural", _small_neural)
    lengths = ["--lookback", "48", "--horizon", "24"] if dataset == "ett" else []
    body = _json("evaluate", "--dataset", dataset, "--file", str(files[dataset]),
                 "--neural", "--seed", "3", *lengths)  # fmt: skip
    assert body["seed"] == 3
    neural = body["neural"]
    assert 1 <= neural["epochs"] <= 2
    assert 0 <= neural["best_epoch"] <= neural["epochs"]
    assert np.isfinite(neural["mse"])
    # epoch 0 is the ridge-equivalent start, so the kept model is never much worse
    assert neural["mse"] < 1.5 * body["ridge"]["mse"]
    wanted = {"target_mae_kw", "target_coverage_80"} if dataset == "household" else {"coverage_80"}
    assert wanted | {"fit_s"} <= set(neural)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "ett", "--file", "{missing}"], "cannot read"),
        (["--dataset", "ett", "--file", "{household}"], "expected columns 'date'"),
        (["--dataset", "household", "--file", "{ett}"], "expected columns 'Datetime'"),
        (["--dataset", "ett", "--file", "{ett}", "--lookback", "400"], "lookback is 400"),
        (["--dataset", "ett", "--file", "{ett}", "--horizon", "200", "--lookback", "14"],
         "horizon 200"),
        (["--dataset", "household", "--file", "{household}", "--horizon", "9000"],
         "horizon 9000"),
        (["--dataset", "ett", "--file", "{short}"], "rows; the 12/4/4-month split needs 600"),
        (["--dataset", "weather", "--file", "{ett}"], "--dataset 'weather'"),
        (["--dataset", "ett", "--file", "{ett}", "--lookback", "0"], "expected both >= 1"),
    ],
)  # fmt: skip
def test_evaluate_errors_name_the_problem(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    short = ett_csv(tmp_path / "short.csv", rows=300)
    paths = {**files, "missing": tmp_path / "nope.csv", "short": short}
    result = _cli("evaluate", *(a.format(**paths) for a in args), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error:" in result.output
    assert message in result.output


def test_household_without_the_target_column(tmp_path: Path) -> None:
    path = household_csv(tmp_path / "h.csv", days=490)
    text = path.read_text().replace("Global_active_power", "power", 1)
    path.write_text(text)
    result = _cli("evaluate", "--dataset", "household", "--file", str(path))
    assert result.exit_code == 1
    assert "no 'Global_active_power' column" in result.output
