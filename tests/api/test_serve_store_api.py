"""While ``iotml serve`` holds the store, the other commands go through its API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from tests.helpers import free_port, run_iotml

from iotml.store import ServerInfo

NOW_S = int(time.time())
DEADLINE_S = 30.0


def _iotml(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_iotml(home, *args)
    assert done.returncode == 0, done.stderr
    return done


def _rows(home: Path) -> list[tuple[str, str, float]]:
    out = _iotml(home, "query", "--output", "json").stdout
    return [(r["device_id"], r["metric"], r["value"]) for r in map(orjson.loads, out.splitlines())]


def test_cli_commands_work_while_serve_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    http, mqtt = free_port(), free_port()
    env = {**os.environ, "IOTML_HOME": str(home)}
    cmd = [sys.executable, "-m", "iotml.cli", "serve", "--http-port", str(http)]
    server = subprocess.Popen(
        [*cmd, "--mqtt-port", str(mqtt), "--batch", "1"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:  # the log says when serve.json is written
            if "reach the store through this server" in line:
                break
        info = ServerInfo.load(home)
        assert info is not None
        assert (info.url, info.pid) == (f"http://127.0.0.1:{http}", server.pid)

        added = _iotml(home, "devices", "add", "pump-7")
        assert f"held by iotml serve (pid {server.pid})" in added.stderr
        token = next(w for w in added.stdout.split() if len(w) >= 40)
        post = {
            "url": f"http://127.0.0.1:{http}/api/v1/telemetry",
            "content": f'{{"ts": {NOW_S}, "temp": 48.5}}',
            "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        }
        answer = httpx.post(**post)  # type: ignore[arg-type]
        assert answer.status_code == 202, answer.text

        # The pipeline stores in the background: query until the reading is there.
        deadline = time.monotonic() + DEADLINE_S
        while (rows := _rows(home)) == [] and time.monotonic() < deadline:
            pass
        assert rows == [("pump-7", "temp", 48.5)]

        _iotml(home, "devices", "revoke", "pump-7")
        refused = httpx.post(**post)  # type: ignore[arg-type]
        assert refused.status_code == 403, refused.text  # at once: the API re-read the book
        assert "revoked" in refused.json()["detail"]

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.communicate()  # reaps it and closes its stderr pipe
    assert not (home / "serve.json").exists()
    assert _rows(home) == [("pump-7", "temp", 48.5)]  # the file is free again


def test_simulate_over_http_registers_its_fleet_through_a_running_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    http, mqtt = free_port(), free_port()
    env = {**os.environ, "IOTML_HOME": str(home)}
    cmd = [sys.executable, "-m", "iotml.cli", "serve", "--http-port", str(http)]
    server = subprocess.Popen(
        [*cmd, "--mqtt-port", str(mqtt), "--strict"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "reach the store through this server" in line:
                break
        fleet = ["--machines", "1", "--meters", "1", "--thermostats", "1"]
        url = f"http://127.0.0.1:{http}"
        sim = _iotml(home, "simulate", "--via", "http", "--register", "--url", url,
                     "--duration", "2", "--interval", "0.5", *fleet)  # fmt: skip
        assert "issued tokens for 3 devices" in sim.stdout
        assert "not delivered" not in sim.stdout  # no 401/403: every device had its token
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.communicate()
    devices = {device for device, _, _ in _rows(home)}
    assert devices == {"machine-001", "meter-001", "thermostat-001"}  # strict: all registered
