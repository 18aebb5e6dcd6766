"""Async signups for tests: submit through the real API and follow the
signup's stream by its link alone (no bearer token)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.support.accounts import PASSWORD, unique_email
from tests.support.jobs import SseStream

__all__ = ["SIGNUP", "new_signup_body", "signup_stream", "start_signup", "stream_status"]

SIGNUP = "/api/v1/auth/signup/async"


def new_signup_body(**changes: Any) -> dict[str, Any]:
    body = {
        "email": unique_email("signup"),
        "password": PASSWORD,
        "name": "Ada Founder",
        "tenant_name": "Ada's Workshop",
    }
    return body | changes


async def start_signup(server: TestServer, body: dict[str, Any], key: str = "") -> tuple[int, Any]:
    """``(status, body)`` of ``POST /auth/signup/async``; ``key`` the Idempotency-Key."""
    headers = {"Idempotency-Key": key} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(SIGNUP), json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@asynccontextmanager
async def signup_stream(
    server: TestServer, stream_url: str, **headers: str
) -> AsyncIterator[SseStream]:
    """The signup's event stream at ``stream_url``, opened with no credentials."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(server.make_url(stream_url), headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield SseStream(response)


async def stream_status(server: TestServer, stream_url: str) -> tuple[int, Any]:
    """``(status, problem)`` of a stream link that is expected to be refused."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(stream_url)) as response,
    ):
        return response.status, await response.json(content_type=None)
