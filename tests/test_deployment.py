"""Zero-setup deployments as a new user runs them: one real ``hubbub serve``
with nothing configured, started like the installed console script from a
folder that holds an unrelated ``hubbub/`` directory; and a gateway whose
shards were fenced from outside its Ray.

The serve process finds hubbub as an editable install does (a finder after
Python's path finder, set up by a ``sitecustomize`` on PYTHONPATH), so a
``hubbub/`` folder early on a Ray worker's ``sys.path`` would shadow it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import psutil
import pytest
from aiohttp.test_utils import TestServer

from hubbub.storage.embedded import lock_holder
from tests.conftest import REPO_ROOT
from tests.support.jobs import finished_count
from tests.support.processes import Gateway

_SITECUSTOMIZE = """
import importlib.machinery
import sys


class _Installed:
    '''hubbub and tests as an editable install finds them: after the path finder.'''

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in ("hubbub", "tests"):
            return importlib.machinery.PathFinder.find_spec(name, [{repo!r}])
        return None


sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder) + 1, _Installed)
"""


class Deployment:
    """A zero-setup serve: its folder, environment and process."""

    def __init__(self, root: Path) -> None:
        self.workdir = root / "workdir"
        (self.workdir / "hubbub").mkdir(parents=True)  # not a package: a clone, say
        boot = root / "boot"
        boot.mkdir()
        (boot / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(repo=str(REPO_ROOT)))
        self.data_dir = root / "data"
        self.env = {
            "HUBBUB_DATA_DIR": str(self.data_dir),
            "HUBBUB_PLUGINS": "tests.support.probe",
            "PYTHONPATH": str(boot),
        }
        self.logs = root
        self.serve = self.gateway("serve")

    def gateway(self, name: str) -> Gateway:
        """A ``hubbub serve`` of this deployment, not started."""
        command = [sys.executable, "-P", "-m", "hubbub"]  # -P: as the console script
        return Gateway(self.env, self.logs / f"{name}.log", command=command, cwd=self.workdir)

    def hubbub(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another ``hubbub`` command on this deployment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")} | self.env
        return subprocess.run(
            [sys.executable, "-P", "-m", "hubbub", *args],
            env=env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=180,
        )


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    found = Deployment(tmp_path_factory.mktemp("zero-setup"))
    found.serve.start()
    try:
        await found.serve.wait_ready()
        yield found
    finally:
        found.serve.kill()


async def test_a_second_serve_on_the_same_data_directory_is_refused(
    deployment: Deployment,
) -> None:
    second = deployment.gateway("second").start()
    assert second.process is not None
    try:
        assert await asyncio.to_thread(second.process.wait, 120) == 2
    finally:
        second.kill()
    refusal = second.log_tail()
    assert f"pid {deployment.serve.process.pid}" in refusal  # type: ignore[union-attr]
    assert "docs/deployment.md" in refusal
    holder = lock_holder(deployment.data_dir)
    assert holder is not None and holder.pid == deployment.serve.process.pid  # type: ignore[union-attr]
    assert holder.address == f"127.0.0.1:{deployment.serve.port}"
    # The first one still writes: no shard of a second Ray fenced it out.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{deployment.serve.url}/api/v1/tallies/second", json={"amount": 1}) as r,
    ):
        assert r.status == 200, await r.text()


async def test_job_workers_import_the_installed_hubbub(deployment: Deployment) -> None:
    *_, events = await finished_count(deployment.serve.server, 3)
    assert events[-1]["data"]["status"] == "succeeded", events


async def test_the_local_ray_listens_on_loopback_only(deployment: Deployment) -> None:
    listening = {
        (process.name(), connection.laddr.ip)
        for process in deployment.serve.descendants()
        for connection in _listening(process)
    }
    assert any(name == "gcs_server" for name, _ in listening), listening
    outward = {(name, ip) for name, ip in listening if not _loopback(ip)}
    assert outward == set()


async def test_every_log_line_is_one_json_object(deployment: Deployment) -> None:
    lines = (deployment.logs / "serve.log").read_text().splitlines()
    assert lines
    for line in lines:
        assert isinstance(orjson.loads(line), dict), line


async def test_doctor_checks_the_running_instance(deployment: Deployment) -> None:
    done = await asyncio.to_thread(deployment.hubbub, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    pid = deployment.serve.process.pid  # type: ignore[union-attr]
    assert f"checked through the running `hubbub serve` (pid {pid}" in done.stdout
    assert "PostgreSQL 18" in done.stdout and ", 0 pending" in done.stdout
    assert "Valkey 9" in done.stdout and "Ray 2.60.0" in done.stdout
    assert f"locked by `hubbub serve` (pid {pid}" in done.stdout


async def test_a_stopped_serve_leaves_no_ray_session_folder(deployment: Deployment) -> None:
    pid = deployment.serve.process.pid  # type: ignore[union-attr]
    sessions = Path(tempfile.gettempdir()) / "ray"
    assert list(sessions.glob(f"session_*_{pid}")), "expected the running Ray's session"
    assert await deployment.serve.stop() == 0, deployment.serve.log_tail()
    assert list(sessions.glob(f"session_*_{pid}")) == []
    assert lock_holder(deployment.data_dir) is None


async def test_doctor_starts_and_checks_the_embedded_servers_when_none_runs(
    tmp_path: Path,
) -> None:
    fresh = Deployment(tmp_path)
    done = await asyncio.to_thread(fresh.hubbub, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started by doctor for this check, stopped after it" in done.stdout
    assert "PostgreSQL 18" in done.stdout and "pending" in done.stdout
    assert "not in use: doctor held its lock" in done.stdout
    assert lock_holder(fresh.data_dir) is None


async def test_a_gateway_whose_shards_were_fenced_is_not_ready_then_recovers(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    key = f"fenced-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/tallies/{key}", json={"amount": 1}) as r:
            assert r.status == 200, await r.text()
        # What a second Ray on this database does: start the shards again.
        await owner_conn.execute("UPDATE shard_leases SET epoch = epoch + 1 WHERE kind = 'tally'")
        async with http.get(f"{url}/health/ready") as r:
            assert r.status == 503
            problem = await r.json()
        assert not problem["checks"]["leases"]["ok"]
        assert "tally.0" in problem["checks"]["leases"]["error"]
        await _until_ready(http, url)
        async with http.post(f"{url}/api/v1/tallies/{key}", json={"amount": 1}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["total"] == 2


async def test_a_send_through_a_fenced_shard_succeeds_once_it_is_restarted(
    gateway: TestServer, owner_conn: asyncpg.Connection
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    key = f"fenced-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v1/tallies/{key}", json={"amount": 1}) as r:
            assert r.status == 200, await r.text()
        await owner_conn.execute("UPDATE shard_leases SET epoch = epoch + 1 WHERE kind = 'tally'")
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"amount": 2}
        async with http.post(f"{url}/api/v1/tallies/{key}", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["total"] == 3
        await _until_ready(http, url)  # every fenced shard restarted: leave no shard fenced


async def _until_ready(http: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(60):
        while True:
            async with http.get(f"{url}/health/ready") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.2)


def _listening(process: psutil.Process) -> list:
    try:
        return [c for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:
        return []


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback
