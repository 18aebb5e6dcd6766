"""Agent chat for tests: a small OpenAI-compatible chat completions server
(the real ``openai`` client talks to it, from the job workers: its port is
in the session's settings, see ``tests/conftest.py``), and
``POST /chat/stream`` read as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.chat import Team
from tests.support.jobs import SseStream
from tests.support.tenants import Account

__all__ = ["CHAT", "ModelServer", "open_chat_stream"]

CHAT = "/api/v1/chat"


class ModelServer:
    """Speaks ``POST /v1/chat/completions`` with ``stream: true``, on ``port``.

    What it answers is scripted by the user's last message: one containing
    ``[fail]`` gets a 500 error, ``[empty]`` a stream of no text, ``[long]``
    :data:`LONG` (in four chunks), ``[hold]`` the first of :data:`PIECES` and
    then nothing until the server closes; any other gets :data:`PIECES` as
    chunks, then ``[DONE]``. Keeps every
    request it got (``requests``: JSON body and headers); ``asked`` is set at
    each one."""

    PIECES = ("Hub", "bub ", "is ", "realtime.")
    LONG = "é" * 20_000  # 40,000 bytes: past the largest message body by default

    def __init__(self, port: int) -> None:
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.asked = asyncio.Event()
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._server = TestServer(app, host="127.0.0.1", port=port)

    async def __aenter__(self) -> ModelServer:
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._released.set()
        await self._server.close()

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((body, dict(request.headers)))
        self.asked.set()
        said = body["messages"][-1]["content"]
        if "[fail]" in said:
            problem = {"error": {"message": "the model is overloaded", "type": "server_error"}}
            return web.json_response(problem, status=500)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = _script(said, self.PIECES, self.LONG)
        for piece in pieces[:1] if "[hold]" in said else pieces:
            await response.write(_chunk(body["model"], {"content": piece}))
        if "[hold]" in said:
            await self._released.wait()
            return response
        await response.write(_chunk(body["model"], {}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        return response


def _script(said: str, pieces: tuple[str, ...], long: str) -> tuple[str, ...]:
    if "[empty]" in said:
        return ()
    if "[long]" in said:
        return tuple(long[i : i + len(long) // 4] for i in range(0, len(long), len(long) // 4))
    return pieces


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@asynccontextmanager
async def open_chat_stream(
    server: TestServer, team: Team, who: Account, body: dict[str, Any]
) -> AsyncIterator[SseStream]:
    """``POST /chat/stream`` on ``server``; the response must be an event stream."""
    headers = {"X-Tenant-Id": team.tenant_id, "Authorization": f"Bearer {who.token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(server.make_url(f"{CHAT}/stream"), json=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield SseStream(response)
