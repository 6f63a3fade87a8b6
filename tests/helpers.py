"""Small helpers the tests share: a free local port, the CLI in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_iotml(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``iotml ARGS`` as a user runs it, with ``IOTML_HOME`` at ``home``; never raises on
    a non-zero exit (the caller checks ``returncode``)."""
    env = {**os.environ, "IOTML_HOME": str(home)}
    cmd = [sys.executable, "-m", "iotml.cli", *args]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
