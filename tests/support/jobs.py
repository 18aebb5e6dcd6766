"""Jobs for tests: job kinds that fail, hold until cancelled, never get a
worker, fail only their first attempt, ignore cancellation, run past a
timeout, or are limited by concurrency and conflict keys; submitting
through the real API; and a Server-Sent Events reader over aiohttp's
client that keeps every frame (heartbeat comments too).

Importing this module declares the test kinds in this process (the gateways
of the tests run here); Ray workers import it by name to run them."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from pydantic import BaseModel, ConfigDict, Field

from hubbub.errors import AppError
from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import Policy, job_kind
from tests.support.chat import Team, new_team
from tests.support.tenants import Account

__all__ = [
    "JOBS",
    "SseEvent",
    "SseStream",
    "open_stream",
    "submit",
    "unique_key",
    "until_final",
    "until_status",
    "worker_pid",
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


@job_kind(
    "test.flaky", NoInput, resources=LIGHT, policy=Policy(max_attempts=3, backoff_seconds=0.05)
)
async def flaky(context: JobContext, input: NoInput) -> dict[str, int]:
    """Fail the first attempt, succeed the next."""
    if context.attempt == 1:
        raise ConnectionError("the first attempt always breaks")
    return {"attempt": context.attempt}


@job_kind("test.refusing", NoInput, resources=LIGHT, policy=Policy(max_attempts=3))
async def refusing(context: JobContext, input: NoInput) -> None:
    """Refuse the input: an AppError, never retried."""
    raise AppError("bad_input", "this input can never work")


class StubbornInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: From this attempt on the handler returns at once; before it, it holds.
    gives_in_at: int = 1_000


def _stubborn(context: JobContext, input: StubbornInput) -> dict[str, int]:
    """Log the worker's pid, then hold — deaf to cancellation — until the
    attempt ``gives_in_at``, which returns at once."""
    if context.attempt >= input.gives_in_at:
        return {"attempt": context.attempt}
    context.log(f"pid {os.getpid()}")
    while True:
        time.sleep(0.02)


#: Plain (threaded) handlers that only a killed worker stops: once, retried, timed.
job_kind("test.stubborn", StubbornInput, resources=LIGHT)(_stubborn)
job_kind(
    "test.stubborn_retried",
    StubbornInput,
    resources=LIGHT,
    policy=Policy(max_attempts=2, backoff_seconds=0.05),
)(_stubborn)
job_kind("test.overrunning", StubbornInput, resources=LIGHT, policy=Policy(timeout_seconds=0.5))(
    _stubborn
)


class NapInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ms: int = Field(10, ge=0, le=60_000)
    project: str = "none"


async def _nap(context: JobContext, input: NapInput) -> dict[str, str]:
    await asyncio.sleep(input.ms / 1000)
    return {"project": input.project}


#: At most 3 running at once per tenant.
job_kind("test.limited", NapInput, resources=LIGHT, policy=Policy(concurrency=3))(_nap)
#: One at a time per tenant: the order of waiting jobs is their priority's.
job_kind("test.single", NapInput, resources=LIGHT, policy=Policy(concurrency=1))(_nap)
#: One active job per project of a tenant.
job_kind(
    "test.project", NapInput, resources=LIGHT, policy=Policy(conflict_key=lambda i: i.project)
)(_nap)


#: Seen only by its creator and the tenant's owners and admins.
job_kind("test.private", NapInput, resources=LIGHT, policy=Policy(private=True))(_nap)


async def submit(
    team: Team,
    who: Account,
    kind: str,
    input: dict[str, Any] | None = None,
    key: str = "",
    **extra: Any,
) -> tuple[int, Any]:
    """``(status, body)`` of ``POST /jobs``; ``key`` the Idempotency-Key (none if
    empty); ``extra`` more body fields (``run_at``, ``priority``)."""
    headers = {"X-Tenant-Id": team.tenant_id, "Authorization": f"Bearer {who.token}"}
    if key:
        headers["Idempotency-Key"] = key
    body = {"kind": kind, "input": input or {}, **extra}
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

    async def until_event(self, name: str) -> list[SseEvent]:
        """The events up to and including the first of type ``name``."""
        found: list[SseEvent] = []
        while not found or found[-1].event != name:
            frame = await self.next()
            assert frame is not None, f"the stream ended before a {name!r} event: {found}"
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


async def finished_count(server: TestServer, to: int) -> tuple[Team, Account, str, list[dict]]:
    """A new team's owner, a ``demo.count`` job of theirs counted to ``to``, and its events."""
    team = await new_team(server, 1)
    owner = team.people[0]
    _, accepted = await submit(team, owner, "demo.count", {"to": to})
    return team, owner, accepted["id"], await until_final(server, team, owner, accepted["id"])


async def until_status(team: Team, who: Account, job_id: str, *statuses: str) -> dict:
    """The job once its status is one of ``statuses`` (polled; a minute at most)."""
    for _ in range(1200):
        status, job = await team.call("GET", f"{JOBS}/{job_id}", who)
        assert status == 200, job
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {job['status']}, not one of {statuses}")


async def worker_pid(team: Team, who: Account, job_id: str, attempt: int = 1) -> int:
    """The pid a ``test.stubborn`` kind logged on ``attempt`` (waits for it)."""
    for _ in range(1200):
        status, page = await team.call("GET", f"{JOBS}/{job_id}/events?limit=1000", who)
        assert status == 200, page
        attempts = 0
        for event in page["items"]:
            if event["type"] == "status" and "attempt" in event["data"]:
                attempts = event["data"]["attempt"]
            if event["type"] == "log" and attempts == attempt:
                return int(event["data"]["text"].removeprefix("pid "))
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} logged no pid on attempt {attempt}")


def unique_key() -> str:
    return f"key-{uuid.uuid4().hex}"
