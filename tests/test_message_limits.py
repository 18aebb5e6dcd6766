"""Message send limits: the local buckets as pure units, the reserved per-user
budget on real Redis, then a real gateway refusing sends past the per-user
limit over HTTP (429 + Retry-After, nothing stored) and past the per-socket
limit over Socket.IO (``rate_limited`` acks), and floods from one raw
websocket that get exactly one ack per send, with every ok-acked message
stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.errors import AppError
from hubbub.ratelimit import Limit, LocalBucket, RateLimiter, ReservedBudget
from hubbub.services import REALTIME, SETTINGS
from hubbub.storage.redis import connect_redis
from tests.support.chat import CONVERSATIONS, Team, new_team

Serve = Callable[..., Awaitable[TestServer]]

NOW = 1_000_000_000_000  # a fixed monotonic time, in nanoseconds
SECOND = 1_000_000_000

#: The suite's own sends stay far below these: only the limit under test bites.
GENEROUS = {"message_limit_per_socket": "100000/second", "message_limit_per_user": "100000/minute"}


@pytest.fixture(scope="module")
async def redis(service_urls: tuple[str, str]) -> AsyncIterator[Redis]:
    client = connect_redis(service_urls[1])
    yield client
    await client.aclose()


# --- LocalBucket ----------------------------------------------------------------


def test_a_local_bucket_allows_exactly_its_burst_then_says_how_long_to_wait() -> None:
    bucket = LocalBucket(Limit(20, 1))
    assert [bucket.take(NOW) for _ in range(20)] == [0.0] * 20
    assert bucket.take(NOW) == pytest.approx(0.05)  # one send back every 1/20 s


def test_a_local_bucket_refills_evenly_and_a_refusal_spends_nothing() -> None:
    bucket = LocalBucket(Limit(2, 1))
    assert (bucket.take(NOW), bucket.take(NOW)) == (0.0, 0.0)
    assert bucket.take(NOW) > 0
    assert bucket.take(NOW + SECOND // 2) == 0.0  # half a second earns one back
    assert bucket.take(NOW + SECOND // 2) > 0
    assert [bucket.take(NOW + 10 * SECOND) for _ in range(3)][:2] == [0.0, 0.0]  # full, not more


# --- ReservedBudget on real Redis ------------------------------------------------


async def test_a_reserved_budget_refuses_past_its_limit_with_retry_after(redis: Redis) -> None:
    budget = ReservedBudget(RateLimiter(redis), Limit(5, 3600))
    assert budget.chunk == 1  # a small limit is reserved hit by hit: exact
    key = f"test:{uuid.uuid4().hex}"
    for _ in range(5):
        await budget.hit(key)
    with pytest.raises(AppError) as refused:
        await budget.hit(key)
    error = refused.value
    assert (error.status, error.code, error.retriable) == (429, "rate_limited", True)
    assert 1 <= error.extra["retry_after"] <= 720


async def test_concurrent_hits_share_one_reservation(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    limit, key = Limit(100, 3600), f"test:{uuid.uuid4().hex}"
    budget = ReservedBudget(limiter, limit, chunk=16)
    await asyncio.gather(*(budget.hit(key) for _ in range(20)))
    # Two reservations of 16 served the 20 hits; the rest is still in Redis.
    granted, _ = await limiter.take(key, limit, 100)
    assert granted == 100 - 32


# --- A gateway: HTTP -------------------------------------------------------------


async def _post(team: Team, conversation_id: str, i: int) -> tuple[int, Any, str | None]:
    """``(status, body, Retry-After)`` of one HTTP send by ``team.people[0]``."""
    headers = {"Authorization": f"Bearer {team.people[0].token}", "X-Tenant-Id": team.tenant_id}
    body = {"body": f"message {i}", "client_msg_id": f"http-{i}"}
    url = team.server.make_url(f"{CONVERSATIONS}/{conversation_id}/messages")
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as got:
        return got.status, await got.json(), got.headers.get("Retry-After")


async def _stored(conn: asyncpg.Connection, conversation_id: str) -> list[str]:
    """The client_msg_ids of the conversation's stored messages, in seq order."""
    rows = await conn.fetch(
        "SELECT client_msg_id FROM conversation_messages WHERE conversation_id = $1 ORDER BY seq",
        uuid.UUID(conversation_id),
    )
    return [row["client_msg_id"] for row in rows]


async def test_http_sends_past_the_per_user_limit_answer_429_and_store_nothing(
    serve: Serve, owner_conn: asyncpg.Connection
) -> None:
    server = await serve(**GENEROUS | {"message_limit_per_user": "3/hour"})
    team = await new_team(server, 2)
    found = await team.conversation(team.people[0], "group", team.people[1])
    for i in range(3):
        assert (await _post(team, found["id"], i))[0] == 201
    status, problem, retry_after = await _post(team, found["id"], 3)
    assert (status, problem["code"], problem["retriable"]) == (429, "rate_limited", True)
    assert retry_after is not None and int(retry_after) == problem["retry_after"] >= 1
    assert await _stored(owner_conn, found["id"]) == ["http-0", "http-1", "http-2"]
    # The budget is the user's: a socket of the same user is refused too.
    async with _socket(server, team) as ws:
        ack = await _call(ws, _send(found["id"], "socket-0"))
        assert ack["error"]["code"] == "rate_limited", ack
    assert await _stored(owner_conn, found["id"]) == ["http-0", "http-1", "http-2"]


# --- A gateway: Socket.IO --------------------------------------------------------


class _Socket:
    """A bare Engine.IO websocket of ``team.people[0]``: it answers pings and
    collects every ack by its id (failing on a second ack of one id)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.acks: dict[int, dict[str, Any]] = {}
        self._next_id = 0

    async def emit(self, event: str, data: dict[str, Any]) -> int:
        ident, self._next_id = self._next_id, self._next_id + 1
        await self.ws.send_str(f"42{ident}" + json.dumps([event, data]))
        return ident

    async def read_until(self, count: int) -> None:
        """Read until ``count`` acks arrived (or the connection ended)."""
        while len(self.acks) < count:
            message = await self.ws.receive(timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                return  # closed: whatever is missing was never acked
            if message.data == "2":  # Engine.IO ping
                await self.ws.send_str("3")
            elif found := re.match(r"43(\d+)(.*)", message.data, re.DOTALL):
                ident = int(found[1])
                assert ident not in self.acks, f"a second ack of send {ident}"
                self.acks[ident] = json.loads(found[2])[0]


@contextlib.asynccontextmanager
async def _socket(server: TestServer, team: Team) -> AsyncIterator[_Socket]:
    """A connected :class:`_Socket` of ``team.people[0]`` acting in the team's tenant."""
    auth = {"token": team.people[0].token, "tenant_id": team.tenant_id}
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.make_url("/socket.io/?EIO=4&transport=websocket"))
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40" + json.dumps(auth))
        assert (await ws.receive_str()).startswith("40")  # Socket.IO connect
        yield _Socket(ws)


def _send(conversation_id: str, client_msg_id: str) -> dict[str, str]:
    return {"conversation_id": conversation_id, "body": client_msg_id} | {
        "client_msg_id": client_msg_id
    }


async def _call(socket: _Socket, data: dict[str, str]) -> dict[str, Any]:
    ident = await socket.emit("message:send", data)
    await socket.read_until(len(socket.acks) + 1)
    return socket.acks[ident]


async def test_socket_sends_past_the_per_socket_limit_are_acked_rate_limited(
    serve: Serve, owner_conn: asyncpg.Connection
) -> None:
    server = await serve(**GENEROUS | {"message_limit_per_socket": "3/hour"})
    team = await new_team(server, 2)
    found = await team.conversation(team.people[0], "group", team.people[1])
    async with _socket(server, team) as ws:
        acks = [await _call(ws, _send(found["id"], f"a-{i}")) for i in range(4)]
        assert [ack.get("ok") for ack in acks[:3]] == [True, True, True]
        error = acks[3]["error"]
        assert (error["code"], error["retriable"]) == ("rate_limited", True)
        assert error["retry_after"] >= 1
    # Another socket of the same user has a budget of its own.
    async with _socket(server, team) as ws:
        assert (await _call(ws, _send(found["id"], "b-0"))).get("ok") is True
    assert await _stored(owner_conn, found["id"]) == ["a-0", "a-1", "a-2", "b-0"]


async def _flood(server: TestServer, count: int) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """``count`` sends from one socket as fast as it takes them: ``(acks by send,
    client_msg_ids stored)``."""
    team = await new_team(server, 2)
    found = await team.conversation(team.people[0], "group", team.people[1])
    async with _socket(server, team) as ws:

        async def send_all() -> None:
            for i in range(count):
                await ws.emit("message:send", _send(found["id"], f"flood-{i}"))

        sending = asyncio.create_task(send_all())
        await ws.read_until(count)
        await sending
        acks = ws.acks
    conn = await asyncpg.connect(server.app[SETTINGS].database_url)
    try:
        return acks, await _stored(conn, found["id"])
    finally:
        await conn.close()


def _ok_ids(acks: dict[int, dict[str, Any]]) -> list[str]:
    return [f"flood-{i}" for i, ack in sorted(acks.items()) if ack.get("ok")]


async def test_a_flood_past_the_limit_gets_one_ack_per_send_and_loses_nothing_acked(
    serve: Serve,
) -> None:
    server = await serve(**GENEROUS | {"message_limit_per_socket": "40/hour"})
    acks, stored = await _flood(server, 2000)
    assert sorted(acks) == list(range(2000))  # every send answered, exactly once
    codes = [ack["error"]["code"] for ack in acks.values() if not ack.get("ok")]
    assert codes == ["rate_limited"] * 1960
    assert stored == _ok_ids(acks)  # every ok-acked message stored exactly once
    assert len(stored) == 40


async def test_a_flood_slower_than_the_ping_timeout_is_still_answered_in_full(
    serve: Serve,
) -> None:
    """The pong to Engine.IO's ping waits behind the sends read before it; a
    socket whose sends are still being read is alive, not timed out."""
    server = await serve(**GENEROUS)
    engine = server.app[REALTIME].sio.eio
    engine.ping_interval, engine.ping_timeout = 0.2, 0.4  # each send commits: slower
    acks, stored = await _flood(server, 400)
    assert sorted(acks) == list(range(400))
    assert all(ack.get("ok") for ack in acks.values()), acks
    assert stored == _ok_ids(acks)
