"""``iotml control thermostat train | evaluate`` end to end, on one-day episodes."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from iotml.cli.common import State
from iotml.cli.control_thermostat import app
from iotml.registry import ModelRegistry

runner = CliRunner()


def _run(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), obj=State(home=home))
    return result.exit_code, result.output


def test_train_then_evaluate_with_json(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "train", "--name", "thermo", "--timesteps", "300", "--weeks", "4",
                     "--days", "1", "--seed", "3", "--json")  # fmt: skip
    assert code == 0, out
    trained = orjson.loads(out)
    assert trained["model"] == "thermo@1.0.0"
    assert trained["training_weeks"] == 3
    assert trained["timesteps"] == 300
    meta = ModelRegistry(tmp_path).load("thermo").manifest.meta
    assert meta["data"]["training_weeks"] == [
        "2024-01-01T00:00:00", "2024-01-08T00:00:00", "2024-01-15T00:00:00"
    ]  # fmt: skip

    plots = tmp_path / "plots"
    code, out = _run(tmp_path, "evaluate", "--model", "thermo@1.0.0", "--weeks", "1",
                     "--days", "1", "--plots", str(plots), "--json")  # fmt: skip
    assert code == 0, out
    report = orjson.loads(out)
    assert report["model"] == "thermo@1.0.0"
    assert report["weeks"] == ["2024-01-22T00:00:00"]  # the held-out week, never a trained one
    means = report["means"]
    assert list(means) == ["fixed", "schedule-aware", "mpc", "dqn"]
    for kpis in means.values():
        assert set(kpis) == {"energy_kwh", "cost", "discomfort_kh", "max_violation_k"}
    assert means["mpc"]["cost"] < means["fixed"]["cost"]
    assert sorted(p.name for p in plots.iterdir()) == ["tradeoff.png", "week.png"]


def test_evaluate_baselines_as_a_table(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "evaluate", "--weeks", "1", "--days", "0.5", "--seeds", "1,2")
    assert code == 0, out
    assert "2 held-out weeks" in out
    for name in ("fixed", "schedule-aware", "mpc"):
        assert name in out
    assert "dqn" not in out


def test_clean_errors(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "evaluate", "--model", "missing", "--days", "0.5")
    assert code == 1
    assert "error:" in out
    assert "missing" in out
    code, out = _run(tmp_path, "evaluate", "--seeds", "a,b", "--days", "0.5")
    assert code == 1
    assert "--seeds is 'a,b'" in out
    code, out = _run(tmp_path, "train", "--name", "x", "--weather", str(tmp_path / "no.csv"))
    assert code == 1
    assert "no.csv" in out
    short = tmp_path / "short.csv"
    short.write_text("time,temperature\n2024-01-01T00:00,1.0\n2024-01-02T00:00,2.0\n")
    code, out = _run(tmp_path, "train", "--name", "x", "--weather", str(short))
    assert code == 1
    assert "less than one whole week" in out
