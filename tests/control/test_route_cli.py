"""``control route train | evaluate`` end to end with ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from iotml.cli.common import State
from iotml.cli.control_route import app

runner = CliRunner()


def _invoke(home: Path, args: list[str]) -> Any:
    return runner.invoke(app, args, obj=State(home=home))


def test_train_then_evaluate_static_json(tmp_path: Path) -> None:
    trained = _invoke(
        tmp_path,
        [
            "train",
            "--name",
            "city",
            "--rows",
            "4",
            "--cols",
            "4",
            "--static",
            "--destinations",
            "2",
            "--episodes",
            "1500",
            "--json",
        ],
    )
    assert trained.exit_code == 0, trained.output
    body = orjson.loads(trained.stdout)
    assert (len(body["destinations"]), body["nodes"]) == (2, 16)
    assert body["model"] == "city@1.0.0"
    assert (tmp_path / "models" / "city").is_dir() or any(tmp_path.rglob("manifest.json"))
    assert body["steps"] >= 2 * 1500
    evaluated = _invoke(
        tmp_path, ["evaluate", "--model", "city", "--days", "1", "--trips-per-day", "30", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    kpis = orjson.loads(evaluated.stdout)
    assert (kpis["trips"], kpis["static"]) == (30, True)
    methods = kpis["methods"]
    assert set(methods) == {"free_flow_dijkstra", "stale_dijkstra", "q_learning", "lower_bound"}
    assert abs(methods["q_learning"]["gap_vs_lower_bound"]) < 1e-12


def test_congested_evaluate_prints_a_table(tmp_path: Path) -> None:
    trained = _invoke(
        tmp_path,
        [
            "train",
            "--rows",
            "3",
            "--cols",
            "4",
            "--destinations",
            "1",
            "--episodes",
            "300",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "trained 1 agents" in trained.stdout
    evaluated = _invoke(tmp_path, ["evaluate", "--days", "1", "--trips-per-day", "10"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "lower_bound" in evaluated.stdout
    assert "congested" in evaluated.stdout


def test_tntp_network_and_bad_model_file(tmp_path: Path) -> None:
    net = tmp_path / "ring_net.tntp"
    rows = [
        f"{u} {v} 1000 1 {1 + (u * v) % 3} 0.15 4 ;"
        for u in range(1, 7)
        for v in ((u % 6) + 1, ((u - 2) % 6) + 1, ((u + 2) % 6) + 1)
    ]
    net.write_text(
        "<NUMBER OF NODES> 6\n<END OF METADATA>\n~ init term cap len fft b p ;\n"
        + "\n".join([*rows, "7 x ;"])
        + "\n"
    )
    trained = _invoke(
        tmp_path,
        [
            "train",
            "--name",
            "ring",
            "--tntp",
            str(net),
            "--destinations",
            "2",
            "--episodes",
            "500",
            "--json",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert orjson.loads(trained.stdout)["nodes"] == 6
    assert "1 malformed TNTP rows skipped" in trained.stderr
    evaluated = _invoke(
        tmp_path, ["evaluate", "--model", "ring", "--days", "1", "--trips-per-day", "5", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    missing = _invoke(tmp_path, ["evaluate", "--model", "nowhere"])
    assert missing.exit_code == 1
    assert "nowhere" in missing.stderr


def test_a_bundle_of_another_task_or_tampered_is_refused(tmp_path: Path) -> None:
    from iotml.registry import ModelRegistry

    ModelRegistry(tmp_path).save("other", "1", task="clustering", files={"x.bin": b"x"})
    foreign = _invoke(tmp_path, ["evaluate", "--model", "other"])
    assert foreign.exit_code == 1
    assert "is not a route model" in foreign.stderr
    trained = _invoke(tmp_path, ["train", "--name", "r", "--rows", "3", "--cols", "3",
                                 "--destinations", "1", "--episodes", "50"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    agents = next(tmp_path.rglob("agents.npz"))
    agents.write_bytes(agents.read_bytes()[:-5] + b"xxxxx")
    tampered = _invoke(tmp_path, ["evaluate", "--model", "r"])
    assert tampered.exit_code == 1
    assert "altered" in tampered.stderr
