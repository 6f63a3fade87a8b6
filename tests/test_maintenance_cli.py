"""``iotml maintenance``: train from a store and a log, predict, plot, evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from tests.maintenance.fleet import METRICS, fleet, log_csv, run
from typer.testing import CliRunner

from iotml.cli import app
from iotml.store import open_store

runner = CliRunner()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """``--home``/``--store`` options of a DuckDB store with 24 h of a fleet, and its log."""
    root = tmp_path_factory.mktemp("site")
    f = fleet(seed=1)
    with open_store(str(root / "store.duckdb")) as store:
        run(f, store, 24 * 60)
    (root / "log.csv").write_text(log_csv(f.truth))
    return ["--home", str(root / "home"), "--store", str(root / "store.duckdb")], root


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


TRAIN = ["maintenance", "train", "--metrics", ",".join(METRICS), "--horizon", "1h",
         "--every", "5m", "--windows", "30min", "--windows", "2h", "--cv", "0"]  # fmt: skip


def test_train_predict_and_plot(site: tuple[list[str], Path]) -> None:
    opts, root = site
    code, out = _cli(*opts, *TRAIN, "--log", str(root / "log.csv"), "--name", "fleet-risk",
                     "--version", "1.0.0", "--json")  # fmt: skip
    assert code == 0, out
    trained = orjson.loads(out)
    assert trained["model"] == "fleet-risk@1.0.0"
    assert trained["metrics"]["devices"] == 8
    code, out = _cli(*opts, "maintenance", "predict", "--model", "fleet-risk", "--json",
                     "--at", "2026-01-01T20:00:00Z")  # fmt: skip
    assert code == 0, out
    body = orjson.loads(out)
    assert body["model"] == "fleet-risk@1.0.0"
    assert body["task"] == "failure"
    assert len(body["predictions"]) == 8
    assert all(0 <= p["value"] <= 1 and len(p["reasons"]) == 3 for p in body["predictions"])
    code, out = _cli(*opts, "maintenance", "predict", "--model", "fleet-risk@1.0.0",
                     "--device", "machine-002", "--at", "2026-01-01T20:00:00Z")  # fmt: skip
    assert code == 0
    assert "machine-002" in out
    assert "machine-001" not in out
    png = root / "risk.png"
    code, out = _cli(*opts, "maintenance", "plot", "--model", "fleet-risk", "-o", str(png),
                     "--end", "2026-01-01T12:00:00Z", "--threshold", "0.5")  # fmt: skip
    assert code == 0, out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "8 machines" in out


def test_train_shows_a_table_and_rul(site: tuple[list[str], Path]) -> None:
    opts, root = site
    code, out = _cli(*opts, *TRAIN, "--log", str(root / "log.csv"), "--name", "fleet-rul",
                     "--task", "rul", "--cap", "3h", "--model", "boosting")  # fmt: skip
    assert code == 0, out
    assert "trained fleet-rul@1.0.0 (rul)" in out
    assert "failures" in out
    code, out = _cli(*opts, "maintenance", "predict", "--model", "fleet-rul",
                     "--at", "2026-01-01T20:00:00Z")  # fmt: skip
    assert code == 0
    assert "RUL (h)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "--model", "nothing"], "model 'nothing' has no versions"),
        (["predict", "--model", "@1"], "is not NAME or NAME@VERSION"),
        (["evaluate", "--dataset", "kaggle"], "--dataset 'kaggle' is not"),
        (["evaluate", "--dataset", "cmapss"], "needs --data-dir"),
        (["evaluate", "--dataset", "ai4i"], "needs --file"),
    ],
)
def test_mistakes_are_one_error_line(
    site: tuple[list[str], Path], args: list[str], message: str
) -> None:
    code, out = _cli(*site[0], "maintenance", *args)
    assert code == 1, out
    assert out.startswith("error:"), out
    assert message in out, out


def test_train_mistakes_are_one_error_line(site: tuple[list[str], Path]) -> None:
    opts, root = site
    code, out = _cli(*opts, *TRAIN, "--log", str(root / "log.csv"), "--name", "x", "--task", "age")
    assert code == 1
    assert "task='age'" in out
    code, out = _cli(*opts, *TRAIN, "--log", str(root / "nope.csv"), "--name", "x")
    assert code == 1
    assert "cannot read maintenance log" in out


def _cmapss(root: Path, subset: str) -> Path:
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}  # type: dict[str, list[str]]
    rul = []
    for part, units in (("train", 8), ("test", 4)):
        for unit in range(1, units + 1):
            life = int(rng.integers(60, 90))
            shown = life if part == "train" else life - int(rng.integers(5, 40))
            if part == "test":
                rul.append(life - shown)
            for cycle in range(1, shown + 1):
                wear = cycle / life
                sensors = 500 + 20 * wear**2 + rng.normal(0, 0.3, 21)
                row = [unit, cycle, 0.0, 0.0, 100.0, *sensors]
                lines[part].append(" ".join(f"{v:g}" for v in row))
    for part, rows in lines.items():
        (root / f"{part}_{subset}.txt").write_text("\n".join(rows) + "\n")
    (root / f"RUL_{subset}.txt").write_text("\n".join(map(str, rul)) + "\n")
    return root


def test_evaluate_cmapss_any_subset_by_path(tmp_path: Path) -> None:
    data = _cmapss(tmp_path, "FD009")
    args = ["maintenance", "evaluate", "--dataset", "cmapss", "--data-dir", str(data),
            "--subset", "FD009", "--cap", "60"]  # fmt: skip
    code, out = _cli(*args, "--json")
    assert code == 0, out
    result = orjson.loads(out)
    assert result["subset"] == "FD009"
    assert result["cap"] == 60.0
    assert result["conditions"] == 1
    assert result["rmse"] < 25
    assert "units" not in result
    code, out = _cli(*args)
    assert code == 0
    assert "cmapss evaluation" in out
    assert "rmse" in out


def test_evaluate_ai4i_by_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    header = ("UDI,Product ID,Type,Air temperature [K],Process temperature [K],"
              "Rotational speed [rpm],Torque [Nm],Tool wear [min],Machine failure")  # fmt: skip
    rows = [header]
    for i in range(400):
        torque, wear = rng.normal(40, 10), rng.uniform(0, 250)
        fail = int(torque * wear > 11000)
        rows.append(f"{i + 1},M{i},{'LMH'[i % 3]},300,310,{rng.normal(1500, 100):.0f},"
                    f"{torque:.1f},{wear:.0f},{fail}")  # fmt: skip
    path = tmp_path / "ai4i.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out = _cli("maintenance", "evaluate", "--dataset", "ai4i", "--file", str(path),
                     "--model", "tree", "--json")  # fmt: skip
    assert code == 0, out
    result = orjson.loads(out)
    assert result["dataset"] == "ai4i"
    assert result["folds"] == 5
    assert result["cv_f1"] > 0.5


def test_serve_config_adds_the_maintenance_stage(site: tuple[list[str], Path]) -> None:
    from iotml.api.service import ServeConfig, Service
    from iotml.pipeline.maintenance import MaintenanceStage

    opts, root = site
    code, out = _cli(*opts, *TRAIN, "--log", str(root / "log.csv"), "--name", "serve-risk")
    assert code == 0, out
    config = ServeConfig(
        maintenance_model="serve-risk@1.0.0", maintenance_every_s=300, risk_threshold=0.7,
        home=root / "home",
    )  # fmt: skip
    with open_store("memory://") as store:
        (stage,) = Service(store, config).stages
    assert isinstance(stage, MaintenanceStage)
    assert stage.model.ref == "serve-risk@1.0.0"
    assert stage.every_us == 300 * 10**6
    assert stage.risk_threshold == 0.7


def test_serve_with_an_unknown_model_is_one_error_line(site: tuple[list[str], Path]) -> None:
    opts, root = site
    store = ["--store", str(root / "serve.duckdb")]
    code, out = _cli(*opts[:2], *store, "serve", "--http-port", "0", "--mqtt-port", "0",
                     "--maintenance-model", "missing@2")  # fmt: skip
    assert code == 1, out
    assert out.startswith("error:")
    assert "model 'missing' has no version '2'" in out
