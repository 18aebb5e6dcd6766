"""Shared fixtures: real Postgres, Redis and Ray, started once per session.

With ``HUBBUB_DATABASE_URL`` and ``HUBBUB_REDIS_URL`` set the suite uses
those servers; otherwise it starts the embedded ones in a temporary
directory. Ray is a local cluster started by the test process (or the
cluster named by ``HUBBUB_RAY_ADDRESS``), in a namespace of its own.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from hubbub.actors.lease import acquire_lease
from hubbub.actors.runtime import connect_ray, disconnect_ray
from hubbub.actors.shard import ShardHost
from hubbub.chat import messages
from hubbub.chat.entity import ConversationEntity
from hubbub.config import Settings, load_settings
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins, migration_streams
from hubbub.storage.database import Database, connect_owner
from hubbub.storage.embedded import EmbeddedPostgres, EmbeddedRedis
from hubbub.storage.migrate import migrate
from hubbub.storage.redis import connect_redis
from tests.support import probe
from tests.support.chat import LocalConversations, new_team
from tests.support.processes import TWO_FACTOR_KEY

TEST_STREAMS = migration_streams([probe.plugin])

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def service_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``(database_url, redis_url)`` of the servers the suite runs against."""
    database_url = os.environ.get("HUBBUB_DATABASE_URL")
    redis_url = os.environ.get("HUBBUB_REDIS_URL")
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    data = tmp_path_factory.mktemp("services")
    if database_url is None:
        postgres = EmbeddedPostgres(data / "postgres")
        database_url = postgres.start()
        started.append(postgres)
    if redis_url is None:
        redis = EmbeddedRedis(data / "redis")
        redis_url = redis.start()
        started.append(redis)
    yield database_url, redis_url
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def model_port() -> int:
    """A free port for the test model server (``tests.support.agent.ModelServer``):
    job workers run with the session's settings, so its address is one of them."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@pytest.fixture(scope="session")
def settings(
    service_urls: tuple[str, str], model_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    database_url, redis_url = service_urls
    return load_settings(
        agent_base_url=f"http://127.0.0.1:{model_port}/v1",
        agent_api_key="sk-test",
        agent_model="test-model",
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("data"),
        ray_namespace=f"hubbub-test-{uuid.uuid4().hex[:8]}",
        shards=2,
        log_format="console",
        # Every test logs in from 127.0.0.1: per-address limits would make tests
        # depend on each other. tests/test_rate_limits.py checks the limits on a
        # gateway of its own.
        login_limit_per_ip="100000/minute",
        login_limit_per_account="1000/minute",
        password_forgot_limit_per_ip="100000/minute",
        register_limit_per_ip="100000/minute",
        register_limit_global="100000/minute",
        # Jobs waiting on a concurrency limit or a retry are launched by the
        # sweep's next round: a quick one keeps job tests short.
        job_sweep_seconds=0.1,
        # One recipient per round, so a test can cancel a broadcast mid-way
        # (workers take the deployment's settings, from the launcher).
        broadcast_batch_size=1,
        two_factor_key=SecretStr(TWO_FACTOR_KEY),
    )


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> Settings:
    """The database with hubbub's migrations and the test plugin's."""
    assert settings.database_url is not None
    await migrate(settings.database_url, app_role=settings.app_role, streams=TEST_STREAMS)
    return settings


@pytest.fixture(scope="session")
def ray_cluster(migrated: Settings) -> Iterator[Settings]:
    """A connected Ray; shard processes can import ``tests.support``."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    connect_ray(migrated)
    yield migrated
    disconnect_ray()


@pytest.fixture(scope="session")
async def db(migrated: Settings) -> AsyncIterator[Database]:
    """A pool as the application role: row-level security applies."""
    assert migrated.database_url is not None
    database = await Database.connect(migrated.database_url, role=migrated.app_role, size=4)
    yield database
    await database.close()


@pytest.fixture
async def owner_conn(migrated: Settings) -> AsyncIterator:
    """A connection as the database owner, to check what really was written."""
    assert migrated.database_url is not None
    conn = await connect_owner(migrated.database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def gateway(ray_cluster: Settings) -> AsyncIterator[TestServer]:
    """A gateway in the test process, with the test plugin, on a real port."""
    server = TestServer(create_app(ray_cluster, load_plugins(["tests.support.probe"])))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def serve(ray_cluster: Settings) -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    """``await serve(**changes)``: a gateway of the built-in plugins with those settings
    changed, on a real port, closed after the test."""
    servers: list[TestServer] = []

    async def start(**changes: Any) -> TestServer:
        settings = ray_cluster.model_copy(update=changes)
        server = TestServer(create_app(settings, load_plugins([])))
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def small_window(
    migrated: Settings, gateway: TestServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LocalConversations]:
    """Conversations of a new team of three in a shard host in this process,
    whose entities keep only their latest 3 messages in memory."""
    monkeypatch.setattr(messages, "WINDOW", 3)
    redis = connect_redis(migrated.redis_url or "")
    lease = await acquire_lease(db.pool, "conversation", 950, uuid.uuid4().hex)
    host = ShardHost(
        ConversationEntity, lease, db, redis, idle_seconds=600, idempotency_window_hours=1
    )
    yield LocalConversations(host, db, await new_team(gateway, 3))
    await host.close()
    await redis.aclose()
