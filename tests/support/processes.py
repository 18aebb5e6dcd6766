"""Real ``hubbub serve`` processes, started and stopped by tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import aiohttp
import psutil
from aiohttp.test_utils import TestServer
from yarl import URL

__all__ = ["TWO_FACTOR_KEY", "At", "Gateway", "free_port"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class At:
    """A gateway process seen as the ``TestServer`` the helpers of tests/support expect."""

    def __init__(self, url: str) -> None:
        self._url = url

    def make_url(self, path: str) -> URL:
        return URL(self._url + path)


#: The suite's HUBBUB_TWO_FACTOR_KEY: every gateway of the suite shares one
#: database, so one key (a gateway with it seals the token signing keys that
#: all of them read).
TWO_FACTOR_KEY = "k" * 40


class Gateway:
    """One ``python -m hubbub serve`` process on a free port, configured only
    by ``env`` (and the suite's :data:`TWO_FACTOR_KEY`, unless ``env`` names
    another): no ``HUBBUB_*`` variable leaks in from the test process.
    ``command`` replaces ``python -m hubbub``; ``cwd`` is its working directory."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        command: Sequence[str] = (sys.executable, "-m", "hubbub"),
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
        suite = {"HUBBUB_TWO_FACTOR_KEY": TWO_FACTOR_KEY}
        self._env = {**inherited, **suite, **env, "HUBBUB_PORT": str(self.port)}
        self._log_path = log_path
        self._command = [*command, "serve"]
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> TestServer:
        """This gateway for the helpers that take a ``TestServer``."""
        return cast(TestServer, At(self.url))

    def start(self) -> Gateway:
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(
                self._command,
                env=self._env,
                cwd=self._cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    async def wait_ready(self, within: float = 120.0) -> dict:
        """The readiness report, once it says ready."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(within):
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise AssertionError(f"gateway exited early:\n{self.log_tail()}")
                try:
                    async with http.get(f"{self.url}/health/ready") as response:
                        if response.status == 200:
                            return await response.json()
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    def descendants(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    async def stop(self, signum: int = signal.SIGINT, within: float = 60.0) -> int:
        """Signal the gateway and wait for it to exit; its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return await asyncio.to_thread(self.process.wait, within)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
