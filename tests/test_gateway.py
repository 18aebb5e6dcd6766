"""The gateway end to end: readiness, the full request → shard → commit →
publish → socket path, several gateway processes on one Redis and Ray, and
the zero-setup ``hubbub serve`` that starts and stops everything itself."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import aiohttp
import psutil
import ray
import socketio
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins
from hubbub.storage.embedded import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.support.accounts import sign_up
from tests.support.processes import Gateway

#: Every bus subscription a gateway holds is checked, not only the first.
READY_CHECKS = {
    "postgres",
    "redis",
    "ray",
    "leases",
    "fanout",
    "fanout:conversations",
    "fanout:jobs",
    "fanout:revocations",
    "fanout:tenant_access",
}


class Listener:
    """A Socket.IO client that records the events it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.client.on("*", self._record)

    async def _record(self, event: str, data: dict) -> None:
        await self.events.put((event, data))

    async def connect(self, url: str, token: str | None = None) -> Listener:
        """Connect as a fresh account (signed up at ``url``) unless ``token`` is given."""
        if token is None:
            token = (await sign_up(url.rstrip("/")))["access_token"]
        auth = {"token": token}
        await self.client.connect(url, transports=["websocket"], wait_timeout=10, auth=auth)
        return self

    async def next(self) -> tuple[str, dict]:
        return await asyncio.wait_for(self.events.get(), 10)


async def test_ready_when_postgres_redis_ray_and_fanout_all_work(gateway: TestServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(gateway.make_url("/health/ready")) as response,
    ):
        report = await response.json()
    assert response.status == 200
    assert report["status"] == "ready"
    assert {name for name, check in report["checks"].items() if check["ok"]} == READY_CHECKS


async def test_a_committed_change_reaches_a_watching_socket(gateway: TestServer) -> None:
    key = f"live-{uuid.uuid4().hex}"
    listener = await Listener().connect(str(gateway.make_url("/")))
    try:
        ack = await listener.client.call("tally:watch", {"key": key}, timeout=10)
        assert ack == {"ok": True, "data": {"watching": key}}
        async with aiohttp.ClientSession() as http:
            url = gateway.make_url(f"/api/v1/tallies/{key}")
            async with http.post(url, json={"amount": 4}) as response:
                assert response.status == 200
                assert await response.json() == {"seq": 1, "total": 4}
        assert await listener.next() == (
            "tally:added",
            {"tally": key, "seq": 1, "amount": 4, "total": 4},
        )
    finally:
        await listener.client.disconnect()


async def test_a_bad_socket_payload_gets_an_error_ack(gateway: TestServer) -> None:
    listener = await Listener().connect(str(gateway.make_url("/")))
    try:
        ack = await listener.client.call("tally:watch", {"key": "no spaces!"}, timeout=10)
    finally:
        await listener.client.disconnect()
    assert ack["error"]["code"] == "validation_failed"
    assert ack["error"]["errors"][0]["field"] == "key"


async def test_readiness_names_the_dependency_that_is_down(ray_cluster: Settings) -> None:
    redis = EmbeddedRedis(ray_cluster.data_dir / f"redis-{uuid.uuid4().hex[:6]}")
    settings = ray_cluster.model_copy(update={"redis_url": await asyncio.to_thread(redis.start)})
    server = TestServer(create_app(settings, load_plugins([])))
    await server.start_server()
    try:
        await asyncio.to_thread(redis.stop)
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.make_url("/health/ready")) as response,
        ):
            problem = await response.json()
    finally:
        await server.close()
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert problem["code"] == "not_ready"
    assert "redis" in problem["detail"] and "fanout" in problem["detail"]
    assert problem["checks"]["postgres"]["ok"] and not problem["checks"]["redis"]["ok"]


def _cluster_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url and settings.redis_url
    return {
        "HUBBUB_DATABASE_URL": settings.database_url,
        "HUBBUB_REDIS_URL": settings.redis_url,
        "HUBBUB_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "HUBBUB_RAY_NAMESPACE": settings.ray_namespace,
        "HUBBUB_SHARDS": str(settings.shards),
        "HUBBUB_PLUGINS": "tests.support.probe",
        "HUBBUB_LOG_FORMAT": "console",
        "PYTHONPATH": str(REPO_ROOT),
    }


async def test_an_event_on_one_gateway_reaches_a_socket_on_another(
    ray_cluster: Settings, tmp_path: Path
) -> None:
    env = _cluster_env(ray_cluster)
    first = Gateway(env, tmp_path / "first.log").start()
    second = Gateway(env, tmp_path / "second.log").start()
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        key = f"across-{uuid.uuid4().hex}"
        # Signed up on the first gateway: the second verifies it with the shared keys.
        token = (await sign_up(first.url))["access_token"]
        listener = await Listener().connect(second.url, token)
        speaker = await Listener().connect(first.url)
        await listener.client.call("tally:watch", {"key": key}, timeout=10)

        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{first.url}/api/v1/tallies/{key}", json={"amount": 2}) as r,
        ):
            assert r.status == 200, await r.text()
        assert await listener.next() == (
            "tally:added",
            {"tally": key, "seq": 1, "amount": 2, "total": 2},
        )

        ack = await speaker.client.call("tally:shout", {"key": key, "text": "hi"}, timeout=10)
        assert ack == {"ok": True, "data": None}
        assert await listener.next() == ("tally:shout", {"key": key, "text": "hi"})
        await listener.client.disconnect()
        await speaker.client.disconnect()
    finally:
        for gateway in (first, second):
            assert await gateway.stop() == 0, gateway.log_tail()


def _processes_using(directory: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(directory) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


async def test_serve_with_no_settings_runs_everything_and_stops_it_all(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "HUBBUB_DATA_DIR": str(data_dir),
        "HUBBUB_PLUGINS": "tests.support.probe",
        "HUBBUB_LOG_FORMAT": "console",
        "PYTHONPATH": str(REPO_ROOT),
    }
    serve = Gateway(env, tmp_path / "serve.log")
    key = f"kept-{uuid.uuid4().hex}"

    serve.start()
    report = await serve.wait_ready()
    assert set(report["checks"]) == READY_CHECKS
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{serve.url}/api/v1/tallies/{key}", json={"amount": 7}) as r,
    ):
        assert r.status == 200, await r.text()
    started = serve.descendants() + _processes_using(data_dir)
    assert started, "expected embedded servers and Ray processes"
    assert await serve.stop(signal.SIGINT) == 0, serve.log_tail()
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], f"left running: {[p.info for p in alive]}"

    serve.start()
    await serve.wait_ready()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{serve.url}/api/v1/tallies/{key}") as r,
    ):
        assert await r.json() == {"seq": 1, "total": 7}
    assert await serve.stop(signal.SIGTERM) == 0, serve.log_tail()
