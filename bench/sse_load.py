"""A lean load client of job SSE streams for ``bench/jobs_bench.py``, run as its own process.

    python -m bench.sse_load '<config JSON>'

The config: ``{url, token, tenant_id, jobs,
stages, connect_concurrency, cpu}``. Stream ``i`` follows job
``jobs[i % len(jobs)]`` from its start (``after_seq=0``). The client opens
streams up to ``stages[0]`` — a stream counts as open once its first event
arrived — prints ``{"phase": "opened", ...}`` and waits for a line on stdin:
``next`` opens streams up to the next stage, ``stop`` (or the end of stdin)
ends the run. It also ends once every stream has ended (its job finished).
Then it prints ``{"phase": "done", ...}`` with what each stream saw: events,
progress events, seq order violations, whether it ended with the job's final
status, heartbeats (``: ping``) since the last stage opened, and the commit
→ arrival lag of live progress events.

Parsing is kept to what the checks need: ``id:`` and ``event:`` lines, and
the JSON of ``status`` and ``progress`` events only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

__all__ = ["Frame", "frames", "main", "raise_fd_limit"]

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
PING = b"ping"


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame: an event (``seq``, ``type``, raw ``data``) or a heartbeat."""

    seq: int | None
    type: bytes
    data: bytes


async def frames(content: aiohttp.StreamReader) -> AsyncIterator[Frame]:
    """The frames of an SSE body; a comment line (``: ping``) is a heartbeat frame."""
    fields: dict[bytes, bytes] = {}
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b":"):
            yield Frame(None, PING, b"")
        elif line:
            name, _, value = line.partition(b":")
            fields[name] = value.removeprefix(b" ")
        elif fields:
            seq = fields.get(b"id")
            yield Frame(int(seq) if seq else None, fields.get(b"event", b""), fields[b"data"])
            fields = {}


def rss_bytes() -> int:
    """This process's resident memory, from ``/proc``."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; the new limit
    (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass(slots=True)
class Stream:
    """What one stream saw."""

    job: str
    events: int = 0
    live: int = 0  # events from the `running` status on (not replayed from before the start)
    progress: int = 0
    last_seq: int = 0
    violations: int = 0  # a seq that is not the last one + 1
    final: bool = False
    pings: int = 0
    pings_at_mark: int = 0
    running_at: float | None = None  # monotonic arrival of the `running` status
    final_at: float | None = None
    error: str | None = None
    opened: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def report(self) -> dict[str, Any]:
        fields = ("job", "events", "live", "progress", "last_seq", "violations", "final", "error")
        return {name: getattr(self, name) for name in fields} | {
            "pings": self.pings - self.pings_at_mark,
            "running_at": self.running_at,
            "final_at": self.final_at,
        }


class Client:
    """Owns: the streams of one run and their reading tasks."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.streams: list[Stream] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.lags: list[float] = []  # seconds from an event's commit to its arrival
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=60),
            headers={
                "Authorization": f"Bearer {config['token']}",
                "X-Tenant-Id": config["tenant_id"],
            },
        )
        self.gate = asyncio.Semaphore(config.get("connect_concurrency", 100))

    async def open_up_to(self, count: int) -> None:
        """Open streams until ``count`` exist; returns once each got its first
        event or failed."""
        jobs = self.config["jobs"]
        fresh = [Stream(jobs[i % len(jobs)]) for i in range(len(self.streams), count)]
        self.streams += fresh
        loop = asyncio.get_running_loop()
        self.tasks += [loop.create_task(self._follow(stream)) for stream in fresh]
        await asyncio.gather(*(stream.opened.wait() for stream in fresh))

    async def _follow(self, stream: Stream) -> None:
        url = f"{self.config['url']}/api/v1/jobs/{stream.job}/stream"
        try:
            async with self.gate:
                response = await self.http.get(url)
            async with response:
                if response.status != 200:
                    stream.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                    return
                async for frame in frames(response.content):
                    self._saw(stream, frame)
                    stream.opened.set()
            if not stream.final:
                stream.error = "closed by the server before the final status"
        except (aiohttp.ClientError, OSError) as error:
            stream.error = f"{type(error).__name__}: {error}"
        finally:
            stream.opened.set()

    def _saw(self, stream: Stream, frame: Frame) -> None:
        if frame.type == PING:
            stream.pings += 1
            return
        arrived = time.monotonic()
        stream.events += 1
        if frame.seq != stream.last_seq + 1:
            stream.violations += 1
        stream.last_seq = frame.seq or stream.last_seq
        if frame.type == b"progress":
            stream.progress += 1
            if stream.running_at is not None:  # live, not replayed
                self.lags.append(_lag(orjson.loads(frame.data)))
        elif frame.type == b"status":
            status = orjson.loads(frame.data)["data"]["status"]
            if status == "running" and stream.running_at is None:
                stream.running_at = arrived
            elif status in TERMINAL:
                stream.final, stream.final_at = True, arrived
        if stream.running_at is not None:
            stream.live += 1

    def mark(self) -> float:
        """Start counting heartbeats afresh (a stage just opened); when."""
        for stream in self.streams:
            stream.pings_at_mark = stream.pings
        return time.monotonic()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.close()


def _lag(event: dict[str, Any]) -> float:
    return time.time() - dt.datetime.fromisoformat(event["at"]).timestamp()


def emit(phase: str, **fields: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps({"phase": phase, **fields}) + b"\n")
    sys.stdout.flush()


async def run(config: dict[str, Any]) -> None:
    commands = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    client = Client(config)
    rss_before, cpu_before = rss_bytes(), _cpu_seconds()
    try:
        for stage, count in enumerate(config["stages"]):
            started = time.monotonic()
            await client.open_up_to(count)
            marked = client.mark()
            failed = sum(stream.error is not None for stream in client.streams)
            emit(
                "opened",
                stage=stage,
                streams=count,
                failed=failed,
                seconds=marked - started,
                at=marked,
                rss_added=rss_bytes() - rss_before,
            )
            if await _command(commands, client.tasks) != "next":
                break
        emit(
            "done",
            held_seconds=time.monotonic() - marked,
            cpu_seconds=_cpu_seconds() - cpu_before,
            lags=[round(lag, 5) for lag in client.lags],
            streams=[stream.report() for stream in client.streams],
        )
    finally:
        await client.close()


async def _command(commands: asyncio.StreamReader, tasks: list[asyncio.Task[None]]) -> str:
    """The next command on stdin, or ``stop`` once every stream has ended."""
    read = asyncio.ensure_future(commands.readline())
    ended = asyncio.ensure_future(asyncio.wait(tasks))  # cancelling it leaves the tasks be
    await asyncio.wait((read, ended), return_when=asyncio.FIRST_COMPLETED)
    ended.cancel()
    if not read.done():
        read.cancel()
        return "stop"
    return read.result().decode().strip() or "stop"


def main() -> None:
    config = orjson.loads(sys.argv[1])
    raise_fd_limit()
    if config.get("cpu") is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {config["cpu"]})
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
