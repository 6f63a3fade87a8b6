"""``iotml forecast train | predict | show`` on an embedded store, and forecasts in the demo."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.forecast.meters import write_meters
from typer.testing import CliRunner

from iotml.cli import app
from iotml.forecast.model import ForecastModel
from iotml.pipeline.forecast import ForecastStage
from iotml.registry import ModelRegistry
from iotml.store import open_store

runner = CliRunner()
END = "2026-01-21T00:00:00Z"  # the end of the meters' history


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--home``/``--store`` options of a DuckDB store with 20 days of three meters."""
    root = tmp_path_factory.mktemp("site")
    with open_store(str(root / "store.duckdb")) as store:
        write_meters(store, ["meter-a", "meter-b", "meter-c"])
    return ["--home", str(root / "home"), "--store", str(root / "store.duckdb")]


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


TRAIN = ["forecast", "train", "--metric", "power", "--interval", "1h", "--lookback", "24",
         "--horizon", "6", "--until", END]  # fmt: skip


def test_train_predict_and_show(site: list[str]) -> None:
    code, out = _cli(*site, *TRAIN, "--devices", "meter-a,meter-b", "--name", "meters", "--json")
    assert code == 0, out
    trained = orjson.loads(out)
    assert trained["model"] == "meters@1.0.0"
    assert trained["metrics"]["meters"] == 2
    assert trained["skipped"] == {}
    assert 0.7 <= trained["metrics"]["coverage_0.8"] <= 0.9
    code, out = _cli(*site, "forecast", "predict", "--model", "meters", "--device", "meter-b",
                     "--at", END, "--json")  # fmt: skip
    assert code == 0, out
    body = orjson.loads(out)
    assert (body["device_id"], body["model"], body["metric"]) == (
        "meter-b",
        "meters@1.0.0",
        "power",
    )
    assert body["ts"][0] == END
    assert len(body["point"]) == 6
    code, out = _cli(*site, "forecast", "predict", "--model", "meters@1.0.0", "--device", "meter-a",
                     "--at", END)  # fmt: skip
    assert code == 0, out
    assert "meter-a: power forecast by meters@1.0.0" in out
    assert "80% interval" in out
    assert "2026-01-21 05:00" in out
    code, out = _cli(*site, "forecast", "predict", "--model", "meters", "--device", "meter-c")
    assert code == 1
    assert "device 'meter-c' is not covered by forecast model meters@1.0.0" in out
    _store_forecasts(site)
    code, out = _cli(*site, "forecast", "show", "meter-a")
    assert code == 0, out
    assert "issued 2026-01-21T00:00:00Z" in out
    assert "95% interval" in out
    code, out = _cli(*site, "forecast", "show", "meter-a", "--metric", "power", "--json")
    assert code == 0, out
    assert orjson.loads(out)["issued"] == "2026-01-21T00:00:00Z"
    code, out = _cli(*site, "forecast", "show", "meter-c")
    assert code == 1
    assert "no forecast stored for 'meter-c'" in out


def _store_forecasts(site: list[str]) -> None:
    """What the live stage does under iotml serve: forecast every meter, store the events."""
    home, path = Path(site[1]), site[3]
    model = ForecastModel.load(ModelRegistry(home), "meters")
    with open_store(path) as store:
        stage = ForecastStage(model, store)
        store.write_events(stage.run(1_768_953_600_000_000))


def test_train_shows_progress_figures_and_skipped_meters(site: list[str]) -> None:
    code, out = _cli(*site, *TRAIN, "--since", "2026-01-19T00:00:00Z", "--devices", "meter-a",
                     "--name", "short")  # fmt: skip
    assert code == 1
    assert "no meter has a usable 'power' history: meter-a: history has 48 rows" in out
    code, out = _cli(*site, *TRAIN, "--model", "seasonal", "--levels", "0.9", "--name", "naive")
    assert code == 0, out
    assert "trained naive@1.0.0 (seasonal, power, 2026-01-01T00:00:00Z to" in out
    assert "coverage_0.9" in out
    assert "val_mae" in out
    code, out = _cli(*site, *TRAIN, "--levels", "high", "--name", "bad")
    assert code == 1
    assert "--levels 'high' is not coverages" in out


def test_serve_refuses_an_unknown_forecast_model(site: list[str]) -> None:
    code, out = _cli(*site, "serve", "--forecast-model", "nope", "--http-port", "0")
    assert code == 1
    assert "model 'nope' has no versions" in out


def test_demo_shows_forecasts_for_the_simulated_meters(tmp_path: Path) -> None:
    home = tmp_path / "h"
    args = ["--home", str(home), "demo", "--duration", "3s", "--machines", "1"]
    code, out = _cli(*args, "--meters", "2", "--thermostats", "1")
    assert code == 0, out
    assert "forecast model demo-meter-power@1.0.0 fitted on 2 meters" in out
    assert "power forecast per meter, kW ± 80 % interval" in out
    assert "meter-001" in out
    assert "meter-002" in out
    with open_store(home / "iotml.duckdb") as store:
        assert {e["device_id"] for e in store.events(kind="forecast").to_pylist()} == {
            "meter-001",
            "meter-002",
        }
    assert ModelRegistry(home).versions("demo-meter-power") == ["1.0.0"]
