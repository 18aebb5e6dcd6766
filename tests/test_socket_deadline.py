"""The Socket.IO handshake's deadline: an Engine.IO session that never sends
its Socket.IO CONNECT, or whose CONNECT is refused, is closed after
``HUBBUB_SOCKET_CONNECT_SECONDS``; a connected socket stays."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import socketio
from aiohttp.test_utils import TestServer

from tests.support.accounts import sign_up

DEADLINE = 0.3
# Engine.IO's own ping timeout would close a silent session after 45 s:
# well past this bound, which only keeps a broken test from hanging.
BOUND = 20


async def _engine_io_only(
    server: TestServer, http: aiohttp.ClientSession, send: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    """A websocket Engine.IO session past its open packet; ``send`` then, if given."""
    ws = await http.ws_connect(server.make_url("/socket.io/?EIO=4&transport=websocket"))
    opened = await ws.receive_str()
    assert opened.startswith("0{"), opened
    if send is not None:
        await ws.send_str(send)
    return ws


async def _until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """Every text frame until the server closes, answering its pings."""
    seen = []
    async with asyncio.timeout(BOUND):
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            seen.append(message.data)
            if message.data == "2":
                await ws.send_str("3")
    return seen


async def test_a_session_that_never_connects_is_closed_and_a_connected_one_stays(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(socket_connect_seconds=DEADLINE)
    url = str(server.make_url("")).rstrip("/")
    connected = socketio.AsyncClient(reconnection=False)
    token = (await sign_up(url))["access_token"]
    await connected.connect(url, transports=["websocket"], auth={"token": token}, wait_timeout=10)
    try:
        async with aiohttp.ClientSession() as http:
            silent = await _engine_io_only(server, http)  # opened after: its deadline is later
            await _until_closed(silent)
        assert silent.closed
        assert connected.connected
        await connected.emit("ping")  # the connection still carries events
    finally:
        await connected.disconnect()


async def test_a_session_whose_connect_was_refused_is_closed(
    serve: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await serve(socket_connect_seconds=DEADLINE)
    async with aiohttp.ClientSession() as http:
        refused = await _engine_io_only(server, http, send='40{"token":"not a token"}')
        frames = await _until_closed(refused)
    assert frames and frames[0].startswith("44"), frames  # CONNECT_ERROR, then the close
    assert refused.closed
