"""Redis connections stay bounded under many sockets: a gateway's clients
take connections from pools of a fixed size, however many sockets connect,
disconnect or act at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from hubbub.realtime import socketio_redis
from hubbub.storage.redis import MAX_CONNECTIONS, connect_redis
from tests.support.chat import new_team

SOCKETS = 300


@pytest.fixture
async def redis(service_urls: tuple[str, str]) -> AsyncIterator[Redis]:
    client = connect_redis(service_urls[1])
    yield client
    await client.aclose()


async def _clients(redis: Redis) -> Counter[str]:
    """Redis's clients, counted by name."""
    return Counter(client.get("name", "") for client in await redis.client_list())


async def _socket(
    http: aiohttp.ClientSession, server: TestServer, auth: str
) -> aiohttp.ClientWebSocketResponse:
    """A Socket.IO connection over a raw websocket, connected with ``auth``."""
    ws = await http.ws_connect(server.make_url("/socket.io/?EIO=4&transport=websocket"))
    assert (await ws.receive_str()).startswith("0{")
    await ws.send_str("40" + auth)
    answer = await ws.receive_str()
    assert answer.startswith("40{"), answer
    return ws


async def test_many_sockets_at_once_use_a_bounded_number_of_connections(
    serve: Callable[..., Awaitable[TestServer]], redis: Redis
) -> None:
    server = await serve()
    team = await new_team(server, 1)
    auth = f'{{"token":"{team.people[0].token}","tenant_id":"{team.tenant_id}"}}'
    before = await _clients(redis)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = await asyncio.gather(*(_socket(http, server, auth) for _ in range(SOCKETS)))
        during = await _clients(redis)
        await asyncio.gather(*(ws.close() for ws in sockets))
    after = await _clients(redis)
    # Before the pools were bounded, this gateway's client alone grew by 95.
    for seen in (during, after):
        growth = sum(seen.values()) - sum(before.values())
        assert growth <= MAX_CONNECTIONS + socketio_redis.MAX_CONNECTIONS, (before, seen)
        assert seen["hubbub"] - before["hubbub"] <= MAX_CONNECTIONS, (before, seen)
        socketio_growth = seen["hubbub-socketio"] - before["hubbub-socketio"]
        assert socketio_growth <= socketio_redis.MAX_CONNECTIONS, (before, seen)
        assert set(seen) <= {"hubbub", "hubbub-socketio"}, seen  # every client is named
