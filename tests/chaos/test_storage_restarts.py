"""Redis and Postgres restarted under load, on a deployment of their own: a
dedicated embedded Valkey and Postgres (migrated), a gateway in this process
and shard actors in a Ray namespace of their own, so the rest of the suite
never sees the restarts.

While a server is down readiness answers 503 naming it; once it is back,
200 — with the same gateway, shards and clients, none restarted — and the
loads go on with nothing lost, repeated or reordered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins
from hubbub.storage.embedded import EmbeddedPostgres, EmbeddedRedis
from hubbub.storage.migrate import migrate
from tests.conftest import TEST_STREAMS
from tests.support.chat import new_team
from tests.support.faults import (
    Measured,
    Scenario,
    kill_namespace,
    metric_total,
    until_readiness,
)

pytestmark = pytest.mark.chaos

#: The gateway's bus subscription re-established after Redis came back.
BUS_RECONNECTS = ("hubbub_bus_reconnects_total", {})
#: Commits the shards could not store while Postgres was down (retried by the clients).
COMMIT_FAILURES = ("hubbub_commit_failures_total", {"code": "commit_failed"})


@dataclass
class Deployment:
    """The dedicated servers and the gateway on them."""

    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    settings: Settings
    gateway: TestServer

    @property
    def url(self) -> str:
        return str(self.gateway.make_url("")).rstrip("/")


@pytest.fixture(scope="module")
async def deployment(
    ray_cluster: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    data: Path = tmp_path_factory.mktemp("chaos-storage")
    postgres, redis = EmbeddedPostgres(data / "postgres"), EmbeddedRedis(data / "redis")
    database_url = await asyncio.to_thread(postgres.start)
    redis_url = await asyncio.to_thread(redis.start)
    settings = ray_cluster.model_copy(
        update={
            "database_url": database_url,
            "redis_url": redis_url,
            "ray_namespace": f"hubbub-chaos-{uuid.uuid4().hex[:8]}",
            "shards": 1,
        }
    )
    gateway: TestServer | None = None
    try:
        await migrate(database_url, app_role=settings.app_role, streams=TEST_STREAMS)
        gateway = TestServer(create_app(settings, load_plugins([])))
        await gateway.start_server()
        yield Deployment(postgres, redis, settings, gateway)
    finally:
        if gateway is not None:
            await gateway.close()
        await asyncio.to_thread(kill_namespace, settings.ray_namespace)
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(postgres.stop)


async def _restart(
    deployment: Deployment,
    check: str,
    stop: Callable[[], None],
    start: Callable[[], None],
    record: Callable[[Measured], None],
    counter: tuple[str, dict[str, str]],
) -> None:
    """Stop a server under load, see readiness fail on ``check``, start it
    again at the same URL, then the verdict. The fault's moment is when the
    server has stopped, so recovery times include its restart. ``counter``
    (a ``/metrics`` sample name and labels) must have moved meanwhile."""
    url = deployment.url
    team = await new_team(deployment.gateway, 3)
    assert deployment.settings.database_url is not None
    scenario = await Scenario.start(
        team, deployment.settings.database_url, [[url], [url]], [url], [url]
    )
    try:
        await scenario.warm()
        name, labels = counter
        before = await metric_total(url, name, **labels)
        await asyncio.to_thread(stop)
        scenario.fault()  # from here on the server is down
        down = await until_readiness(url, 503)
        assert down["checks"][check]["ok"] is False, down
        await asyncio.to_thread(start)
        await until_readiness(url, 200)
        await scenario.recovered()
        record(await scenario.verdict(f"restart {check}"))
        assert await metric_total(url, name, **labels) > before, name
    finally:
        await scenario.close()


async def test_a_redis_restart_loses_and_repeats_nothing(
    deployment: Deployment, record: Callable[[Measured], None]
) -> None:
    redis = deployment.redis

    def start() -> None:
        assert redis.start() == deployment.settings.redis_url

    await _restart(deployment, "redis", redis.stop, start, record, BUS_RECONNECTS)


async def test_a_postgres_restart_loses_and_repeats_nothing(
    deployment: Deployment, record: Callable[[Measured], None]
) -> None:
    postgres = deployment.postgres

    def start() -> None:
        assert postgres.start() == deployment.settings.database_url

    await _restart(deployment, "postgres", postgres.stop, start, record, COMMIT_FAILURES)
