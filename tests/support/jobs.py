"""Jobs for tests: job kinds that fail, hold until cancelled or never get a
worker; submitting through the real API; and a Server-Sent Events reader
over aiohttp's client that keeps every frame (heartbeat comments too).

Importing this module declares the test kinds in this process (the gateways
of the tests run here); Ray workers import it by name to run them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from pydantic import BaseModel, ConfigDict

from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import job_kind
from tests.support.chat import Team
from tests.support.tenants import Account

__all__ = [
    "JOBS",
    "SseEvent",
    "SseStream",
    "open_stream",
    "submit",
    "unique_key",
    "until_final",
]

JOBS = "/api/v1/jobs"
#: Little CPU per test job: a 2-core Ray runs many at once.
LIGHT = {"num_cpus": 0.05}


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


@job_kind("test.hold", NoInput, resources=LIGHT)
async def hold(context: JobContext, input: NoInput) -> None:
    """Hold until cancelled, then stop as cancelled."""
    context.step("holding")
    while True:  # a slice of work, then a look at the flag
        context.raise_if_cancelled()
        await asyncio.sleep(0.01)


@job_kind("test.fail", NoInput, resources=LIGHT)
def fail(context: JobContext, input: NoInput) -> None:
    """Raise, from a plain (threaded) handler."""
    context.step("failing")
    raise RuntimeError("the handler broke")


@job_kind("test.unplaceable", NoInput, resources={**LIGHT, "hubbub-test-nowhere": 1})
async def unplaceable(context: JobContext, input: NoInput) -> None:
    """Needs a resource no node has: its task never starts, the job stays queued."""


async def submit(
    team: Team, who: Account, kind: str, input: dict[str, Any] | None = None, key: str = ""
) -> tuple[int, Any]:
    """``(status, body)`` of ``POST /jobs``; ``key`` the Idempotency-Key (none if empty)."""
    headers = {"X-Tenant-Id": team.tenant_id, "Authorization": f"Bearer {who.token}"}
    if key:
        headers["Idempotency-Key"] = key
    body = {"kind": kind, "input": input or {}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(team.server.make_url(JOBS), json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@dataclass
class SseEvent:
    """One dispatched frame; a heartbeat has only ``comments``."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads("\n".join(self.data))


class SseStream:
    """The frames of one ``text/event-stream`` response, in order."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> SseEvent | None:
        """The next frame (an event or a heartbeat), None once the stream ended."""
        frame = SseEvent()
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), 30)
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if frame.data or frame.comments:
                    return frame
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if not name:
                frame.comments.append(value)
            elif name == "data":
                frame.data.append(value)
            elif name in ("id", "event"):
                setattr(frame, name, value)

    async def events(self) -> list[SseEvent]:
        """Every event until the stream ends (heartbeats left out)."""
        found = []
        while (frame := await self.next()) is not None:
            if frame.data:
                found.append(frame)
        return found

    async def until(self, seq: int) -> list[SseEvent]:
        """The events up to and including ``seq``."""
        found: list[SseEvent] = []
        while not found or int(found[-1].id or 0) < seq:
            frame = await self.next()
            assert frame is not None, f"the stream ended before seq {seq}: {found}"
            if frame.data:
                found.append(frame)
        return found


@asynccontextmanager
async def open_stream(
    server: TestServer, team: Team, who: Account, job_id: str, query: str = "", **headers: str
) -> AsyncIterator[SseStream]:
    """``GET /jobs/{id}/stream`` on ``server``; the response must be an event stream."""
    headers |= {"X-Tenant-Id": team.tenant_id, "Authorization": f"Bearer {who.token}"}
    url = server.make_url(f"{JOBS}/{job_id}/stream{query}")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield SseStream(response)


async def until_final(server: TestServer, team: Team, who: Account, job_id: str) -> list[dict]:
    """Every event of the job, from an SSE stream followed to its end."""
    async with open_stream(server, team, who, job_id) as stream:
        return [frame.json() for frame in await stream.events()]


def unique_key() -> str:
    return f"key-{uuid.uuid4().hex}"
