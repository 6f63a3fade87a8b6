"""A private Mosquitto per test: started, stopped and restarted at will, killed at teardown.

The shared broker on 1883 (``mosquitto`` in tests/conftest.py) cannot be restarted by a
test; :func:`mosquitto_broker` starts one that can, on a free port, with persistence in
the test's ``tmp_path`` so persistent sessions and their queued QoS-1 messages survive a
``restart()``. Extra config lines (TLS, ``password_file``, ...) go after the defaults,
inside the listener's section, so they apply to it and override a default of the same
name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest
from tests.helpers import free_port

_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class MosquittoBroker:
    """One private ``mosquitto -c <conf>`` process on ``127.0.0.1:<port>``.

    ``extra`` lines are in every run's config; ``start``, ``restart`` and ``reload`` take
    ``extra=`` lines for that run only (e.g. ``allow_anonymous false`` with a
    ``password_file`` from :meth:`passwords`, to keep clients out for a while).
    """

    def __init__(self, binary: str, workdir: Path, extra: Sequence[str] = ()) -> None:
        self.binary = binary
        self.workdir = workdir
        self.extra = list(extra)
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``, for :class:`~iotml.transport.mqtt.MqttSource`."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def config(self, extra: Sequence[str] = ()) -> str:
        """The config text of a run; the listener comes first so later lines apply to it."""
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 100000",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # as root, mosquitto would drop to user 'mosquitto' and lose tmp_path
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            *self.extra,
            *extra,
        ]
        return "\n".join(lines) + "\n"

    def passwords(self, users: Mapping[str, str]) -> Path:
        """Write a hashed ``password_file`` for ``users`` (name → password); return its path."""
        path = self.workdir / "passwords"
        path.write_text("".join(f"{name}:{pw}\n" for name, pw in users.items()))
        path.chmod(0o600)
        tool = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)
        return path

    def start(self, *, extra: Sequence[str] = ()) -> None:
        """Start the broker and return once it accepts TCP connections."""
        if self.running:
            raise RuntimeError(f"mosquitto on port {self.port} is already running")
        conf = self._write_config(extra)
        self._output = (self.workdir / "mosquitto.out").open("ab")  # errors before the log opens
        self._process = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=self._output, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _write_config(self, extra: Sequence[str]) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config(extra))
        return conf

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not _accepts(self.port):
            if not self.running or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not listen on port {self.port} within "
                    f"{_READY_TIMEOUT_S} s; log:\n{self.log()}"
                )
            time.sleep(0.01)  # readiness poll interval, bounded by the deadline

    def stop(self) -> None:
        """SIGTERM and wait: a clean exit writes the persistence file."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"mosquitto ignored SIGTERM for {_STOP_TIMEOUT_S} s") from None
        self._process = None
        self._close_output()

    def restart(self, *, extra: Sequence[str] = ()) -> None:
        """Stop cleanly, then start again on the same port with the same persistence."""
        self.stop()
        self.start(extra=extra)

    def reload(self, *, extra: Sequence[str] = ()) -> None:
        """Rewrite the config with ``extra`` for this run and SIGHUP, without a restart.

        Returns once mosquitto has logged the reload; it applies it before serving the
        network again, so later connections meet the new settings (authentication, ACLs;
        listeners cannot change). Connected clients are not affected.
        """
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"mosquitto on port {self.port} is not running")
        self._write_config(extra)
        reloads = self._reloads()
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while self._reloads() == reloads:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not reload within {_READY_TIMEOUT_S} s")
            time.sleep(0.01)  # poll interval, bounded by the deadline

    def _reloads(self) -> int:
        return self.log_path.read_text(errors="replace").count("Reloading config.")

    def kill(self) -> None:
        """SIGKILL, no persistence written: a crash, and the teardown."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._close_output()

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None

    def log(self) -> str:
        """The broker's output and log so far (all runs), for failure messages."""
        files = (self.workdir / "mosquitto.out", self.log_path)
        return "".join(f.read_text(errors="replace") for f in files if f.exists())


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory: ``mosquitto_broker(extra=[...])`` starts a private broker and returns it.

    Without the ``mosquitto`` binary the test is skipped, or fails under
    IOTML_REQUIRE_SERVICES=1, like the ``mosquitto`` fixture.
    """
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )
    if binary is None:
        message = "the mosquitto binary is not installed"
        if os.environ.get("IOTML_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (IOTML_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    brokers: list[MosquittoBroker] = []

    def factory(extra: Sequence[str] = ()) -> MosquittoBroker:
        broker = MosquittoBroker(binary, tmp_path / f"mosquitto-{len(brokers)}", extra)
        brokers.append(broker)
        broker.start()
        return broker

    yield factory
    for broker in brokers:
        broker.kill()
