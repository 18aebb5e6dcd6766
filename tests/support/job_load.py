"""A steady job load for fault tests: one long counting job, followed over
Server-Sent Events by a reader that resumes with ``Last-Event-ID`` — on the
next gateway of its list — whenever its stream breaks, until the job's final
status event.

``test.chaos_count`` counts like ``demo.count`` but logs its worker's pid
first and is retried after a lost worker, so a test can kill the worker and
watch the job go on. Importing this module declares it (Ray workers import
it by name to run it).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import Policy, job_kind
from hubbub.jobs.state import TERMINAL
from tests.support.jobs import JOBS, LIGHT, SseStream
from tests.support.tenants import Account

__all__ = ["CHAOS_COUNT", "Followed", "JobLoad", "attempts_output"]

CHAOS_COUNT = "test.chaos_count"
#: Pause before the reader reconnects, or a request is retried.
BACKOFF_SECONDS = 0.1


class CountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int = Field(100_000, ge=1, le=100_000)
    pause_ms: int = Field(20, ge=0, le=1000)


@job_kind(
    CHAOS_COUNT,
    CountInput,
    resources=LIGHT,
    policy=Policy(max_attempts=3, backoff_seconds=0.05),
)
async def chaos_count(context: JobContext, input: CountInput) -> dict[str, int]:
    """Log the worker's pid, then count to ``to`` with output and progress."""
    context.log(f"pid {os.getpid()}")
    for n in range(1, input.to + 1):
        context.raise_if_cancelled()
        context.progress(100 * n / input.to)
        context.output(f"{n}\n")
        await asyncio.sleep(input.pause_ms / 1000)
    return {"counted": input.to}


@dataclass(frozen=True)
class Followed:
    """One event the reader received, with its arrival time."""

    seq: int
    type: str
    data: dict[str, Any]
    arrived_at: float


def attempts_output(events: list[Followed]) -> list[list[int]]:
    """The numbers each attempt output, in order: a status naming its
    ``attempt`` starts one (an output event may carry several numbers)."""
    attempts: list[list[int]] = []
    for event in events:
        if event.type == "status" and "attempt" in event.data:
            attempts.append([])
        elif event.type == "output":
            attempts[-1].extend(int(n) for n in event.data["chunk"].split())
    return attempts


@dataclass
class JobLoad:
    """A job of ``kind`` submitted through ``urls[0]`` and followed to its end."""

    urls: list[str]
    tenant_id: str
    owner: Account
    kind: str = CHAOS_COUNT
    input: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""
    events: list[Followed] = field(default_factory=list)
    reconnects: int = 0
    _task: asyncio.Task[None] | None = None
    _next_url: int = 0

    def _headers(self) -> dict[str, str]:
        return {"X-Tenant-Id": self.tenant_id, "Authorization": f"Bearer {self.owner.token}"}

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    async def start(self) -> None:
        body = {"kind": self.kind, "input": self.input}
        status, accepted = await self._request("POST", JOBS, body)
        assert status == 202, accepted
        self.job_id = accepted["id"]
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, body)`` from the first gateway of the list that answers."""
        headers = self._headers() | {"Idempotency-Key": f"chaos-{uuid.uuid4().hex}"}
        async with aiohttp.ClientSession() as http:
            while True:
                url = self.urls[self._next_url % len(self.urls)] + path
                try:
                    async with http.request(method, url, json=body, headers=headers) as response:
                        if response.status < 500:
                            return response.status, await response.json(content_type=None)
                except aiohttp.ClientError:
                    self._next_url += 1
                await asyncio.sleep(BACKOFF_SECONDS)

    async def _follow(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self.finished:
                try:
                    await self._read(http)
                except (aiohttp.ClientError, TimeoutError):
                    self._next_url += 1
                if not self.finished:
                    self.reconnects += 1
                    await asyncio.sleep(BACKOFF_SECONDS)

    async def _read(self, http: aiohttp.ClientSession) -> None:
        url = self.urls[self._next_url % len(self.urls)] + f"{JOBS}/{self.job_id}/stream"
        headers = self._headers() | {"Last-Event-ID": str(self.last_seq)}
        async with http.get(url, headers=headers) as response:
            if response.status != 200:
                return
            stream = SseStream(response)
            while (frame := await stream.next()) is not None:
                if frame.data:
                    e = frame.json()
                    self.events.append(Followed(e["seq"], e["type"], e["data"], time.monotonic()))

    @property
    def finished(self) -> bool:
        last = self.events[-1] if self.events else None
        return last is not None and last.type == "status" and last.data["status"] in TERMINAL

    def seen_after(self, moment: float, seq: int) -> bool:
        """Whether an event past ``seq`` arrived after ``moment``."""
        return any(e.arrived_at > moment and e.seq > seq for e in self.events)

    async def until(self, predicate: Any) -> None:
        """Until ``predicate(self)`` holds (checked on every arrival)."""
        while not predicate(self):
            if self._task is not None and self._task.done():
                self._task.result()
                if not predicate(self):
                    raise AssertionError(f"the job ended first: {self.events[-3:]}")
            await asyncio.sleep(BACKOFF_SECONDS / 2)

    async def cancel_and_finish(self) -> list[Followed]:
        """Cancel the job, then every event the reader got, to the final one."""
        status, job = await self._request("POST", f"{JOBS}/{self.job_id}/cancel")
        assert status in (200, 409), job
        assert self._task is not None
        await self._task
        return self.events

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
