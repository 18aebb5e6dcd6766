"""The gateway's one bus and its seq streams, driven through the real gateway.

A gateway hears every committed event on one Redis subscription and routes
each topic to its consumer. Durable streams (a conversation, a job) repair
the gaps the bus leaves in their own task, so a stream waiting on a slow
Postgres read holds up nobody else: not another conversation, not a job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.chat.events import channel
from hubbub.chat.sockets import ROOMS
from hubbub.config import Settings
from hubbub.gateway import create_app
from hubbub.plugin import load_plugins
from hubbub.realtime.seq_stream import Event, SeqStream
from hubbub.services import SETTINGS
from hubbub.storage.embedded import EmbeddedRedis
from tests.support.chat import Team, new_team
from tests.support.jobs import JOBS, open_stream, submit
from tests.test_chat_guarantees import _published, _wait_subscribers
from tests.test_chat_sockets import ChatClient

_WAIT = 10


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _within(awaitable: Awaitable[Any]) -> Any:
    """``awaitable``'s result: the test fails, rather than hangs, if it never comes."""
    async with asyncio.timeout(_WAIT):
        return await awaitable


class StalledReads:
    """Makes one stream's ``read_after`` wait until the test releases it."""

    def __init__(self, stream: SeqStream) -> None:
        self.reading = asyncio.Event()
        self.released = asyncio.Event()
        self._read_after = stream.read_after

    async def read_after(self, after: int, before: int) -> list[Event]:
        self.reading.set()
        await self.released.wait()
        return await self._read_after(after, before)


async def _join(listener: ChatClient, conversation_id: str) -> None:
    join = {"conversation_id": conversation_id, "since_seq": 1}
    assert (await listener.call("conversation:join", join))["data"]["events"] == []


async def _lose_on_the_bus(
    gateway: TestServer, redis: Redis, team: Team, conversation_id: str, body: str
) -> dict:
    """Send a message whose publication never reaches ``gateway``'s bus."""
    fanout, topic = gateway.app[ROOMS].fanout, channel(conversation_id)
    await fanout.unwatch(topic)
    seen_on_bus = asyncio.ensure_future(_published(redis, conversation_id, 2))
    await _wait_subscribers(redis, conversation_id, 1)  # the test's only, not the gateway's
    lost = await team.send(team.people[0], conversation_id, body)
    await seen_on_bus
    await _wait_subscribers(redis, conversation_id, 0)
    await fanout.watch(topic)
    await _wait_subscribers(redis, conversation_id, 1)  # the gateway's again
    await fanout.probe()
    return lost


async def test_a_stalled_repair_holds_up_only_its_own_conversation(
    gateway: TestServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = await new_team(gateway, 2)
    owner, ann = team.people
    stalled_id = (await team.conversation(owner, "group", ann, title="stalled"))["id"]
    other_id = (await team.conversation(owner, "group", ann, title="other"))["id"]
    _, job = await submit(team, owner, "test.hold")
    listener = await ChatClient().connect(_url(gateway), ann.token, team.tenant_id)
    redis = Redis.from_url(settings.redis_url or "")
    try:
        await _join(listener, stalled_id)
        await _join(listener, other_id)
        stream = gateway.app[ROOMS].streams.get(channel(stalled_id))
        assert stream is not None
        stalled = StalledReads(stream)
        monkeypatch.setattr(stream, "read_after", stalled.read_after)
        async with open_stream(gateway, team, owner, job["id"]) as job_events:
            assert [f.event for f in await job_events.until(3)] == ["status", "status", "step"]

            # Seq 2 of one conversation is lost on this gateway's bus; seq 3 shows
            # the gap, and reading seq 2 back from Postgres stalls.
            lost = await _lose_on_the_bus(gateway, redis, team, stalled_id, "two, lost")
            await team.send(owner, stalled_id, "three")
            await _within(stalled.reading.wait())

            # Meanwhile another conversation's events arrive live...
            await team.send(owner, other_id, "live meanwhile")
            event, data = await listener.next()
            assert (event, data["conversation_id"], data["seq"]) == ("message:new", other_id, 2)
            # ...and so do a job's.
            status, _ = await team.call("POST", f"{JOBS}/{job['id']}/cancel", owner)
            assert status == 200
            ended = await _within(job_events.events())
            assert ended[-1].json()["data"] == {"status": "cancelled"}
            assert listener.events.empty()  # nothing of the stalled conversation yet

        # Released, the stalled conversation goes on in order, each event once.
        stalled.released.set()
        first, second = await listener.next(), await listener.next()
        assert [(e, d["conversation_id"], d["seq"]) for e, d in (first, second)] == [
            ("message:new", stalled_id, 2),
            ("message:new", stalled_id, 3),
        ]
        assert first[1]["message"]["id"] == lost["id"]
        await team.send(owner, stalled_id, "four")
        event, data = await listener.next()
        assert (event, data["seq"]) == ("message:new", 4)
        assert listener.events.empty()
    finally:
        await listener.client.disconnect()  # its last follower gone, a stalled stream closes
        await redis.aclose()


@asynccontextmanager
async def _gateway_on_its_own_redis(settings: Settings) -> AsyncIterator[TestServer]:
    """A gateway of the built-in plugins whose Redis nobody else uses."""
    redis = EmbeddedRedis(settings.data_dir / f"redis-{uuid.uuid4().hex[:6]}")
    own = settings.model_copy(update={"redis_url": await asyncio.to_thread(redis.start)})
    server = TestServer(create_app(own, load_plugins([])))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()
        await asyncio.to_thread(redis.stop)


async def _until_subscribed(redis: Redis, channel_name: str) -> None:
    """Until one connection subscribes to ``channel_name``."""
    async with asyncio.timeout(_WAIT):
        while True:
            [(_, subscribers)] = await redis.pubsub_numsub(channel_name)
            if subscribers == 1:
                return
            await asyncio.sleep(0.01)


async def test_a_gateway_hears_every_committed_event_on_one_redis_subscription(
    gateway: TestServer, ray_cluster: Settings
) -> None:
    """Besides python-socketio's own, the gateway holds one pub/sub connection:
    its standing topics, a conversation and a tenant's room all share it."""
    async with _gateway_on_its_own_redis(ray_cluster) as server:
        team = await new_team(server, 2)
        owner, ann = team.people
        found = await team.conversation(owner, "group", ann)
        listener = await ChatClient().connect(_url(server), ann.token, team.tenant_id)
        try:
            await _join(listener, found["id"])
            watch = await listener.call("tenant:watch", {"tenant_id": team.tenant_id})
            assert "data" in watch
            async with Redis.from_url(server.app[SETTINGS].redis_url or "") as redis:
                socketio_channel = f"hubbub-socketio:{ray_cluster.ray_namespace}"
                await _until_subscribed(redis, socketio_channel)
                clients = await redis.client_list(_type="pubsub")
                channels = {c.decode() for c in await redis.pubsub_channels("hubbub:*")}
        finally:
            await listener.client.disconnect()
    assert len(clients) == 2  # the bus, and python-socketio's manager
    assert {
        f"hubbub:conversation:{found['id']}",
        f"hubbub:tenant:{team.tenant_id}",
        "hubbub:auth:revocations",
        "hubbub:tenant-access",
        "hubbub:jobs:ended",
    } <= channels
