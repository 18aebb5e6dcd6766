"""Jobs: submit → first progress latency, progress to 1,000 SSE subscribers, SSE streams.

The figures issue 5 asks for, against one gateway (``hubbub serve`` in
zero-setup mode: embedded Postgres and Valkey, a local Ray, data in a
temporary directory) with a low SSE heartbeat, through its public HTTP API.
Every job is a ``demo.count`` (``hubbub/jobs/demo.py``). Scenarios
(``--scenarios``, in this order):

``memory``
    One long-running job; SSE streams to it are opened in stages
    (``--memory-streams``, e.g. 1,000 then 5,000 in all) and the gateway's
    RSS is read after each stage: added RSS ÷ streams open, and the load
    client's own added RSS ÷ streams.
``streams``
    ``--streams`` SSE streams to one long-running job, held
    ``--hold-seconds`` with heartbeats every ``--heartbeat-seconds``: how
    many stayed open, heartbeats each received, gateway CPU and RSS.
``latency``
    ``--submits`` sequential submits, then two bursts of as many concurrent
    ones: the client POSTs ``/api/v1/jobs`` and opens the job's SSE stream at once
    (``after_seq=0``, so nothing committed before it opened is missed); the
    time from the POST to the 202, to the ``running`` status and to the
    first ``progress`` event on the stream.
``throughput``
    ``--jobs`` jobs with a ``run_at`` ``--start-delay`` ahead, each followed
    by ``--subscribers`` SSE clients that open before the jobs start; the
    handlers report as fast as ``HUBBUB_JOB_REPORT_SECONDS`` batches allow.
    Events and progress events delivered per second in total, and per
    subscriber loss, order and whether its stream ended with the final status.

SSE clients run in separate processes (``bench/sse_load.py``, aiohttp).
With two cores or more the server and everything it started is pinned to
core 0, the load clients and this driver to core 1. Open-file limits are
raised to the hard limit (the server inherits it). Run from the repository
root::

    python -m bench.jobs_bench --write docs/performance.md
    python -m bench.jobs_bench --streams 50 --memory-streams 20,50 --submits 10 \\
        --jobs 2 --subscribers 10 --hold-seconds 5        # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.fanout_bench import (
    Api,
    CpuSample,
    Server,
    cpu_percent,
    start_server,
    stop_server,
    wait_ready,
)
from bench.router_bench import machine, write_section
from bench.sse_load import frames, raise_fd_limit

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Jobs: latency, progress fan-out and SSE streams"
SCENARIOS = ("memory", "streams", "latency", "throughput")
SERVER_CPU, CLIENT_CPU = 0, 1
KIND = "demo.count"
#: A job that runs about 1,000 s, reporting every 10 s: what streams follow in
#: the memory and streams scenarios (cancelled after each).
LONG_JOB = {"to": 100, "pause_ms": 10_000}


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    """What the bench sets for hubbub beyond the zero-setup defaults, and why."""
    return {
        # Heartbeats that flow during a short hold.
        "HUBBUB_SSE_HEARTBEAT_SECONDS": f"{args.heartbeat_seconds:g}",
        "HUBBUB_JOB_REPORT_SECONDS": f"{args.report_seconds:g}",
        # A long run on a busy machine can outlast the default 15-minute tokens.
        "HUBBUB_ACCESS_TOKEN_MINUTES": "240",
        "HUBBUB_LOG_LEVEL": "WARNING",
        "HUBBUB_LOG_FORMAT": "console",
    }


def progress(text: str) -> None:
    print(f"[jobs] {text}", file=sys.stderr, flush=True)


# --- the bench's account and its jobs ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    base_url: str
    token: str
    tenant_id: str


async def provision(base_url: str) -> Account:
    """One account owning one tenant: every job and stream of the run is theirs."""
    run = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession() as http:
        api = Api(http, base_url)
        body = {"email": f"jobs-{run}@example.com", "password": "jobs bench password, long"}
        owner = await api.post("/api/v1/auth/register", body | {"name": "Bench"})
        tenant = await api.post("/api/v1/tenants", {"name": "Jobs bench"}, owner["access_token"])
    return Account(base_url, owner["access_token"], tenant["id"])


class Jobs:
    """The bench account's job calls; anything unexpected raises, naming the call."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.http = aiohttp.ClientSession(
            account.base_url,
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=60),
            headers={"Authorization": f"Bearer {account.token}", "X-Tenant-Id": account.tenant_id},
        )

    async def submit(self, input: dict[str, Any], run_at: dt.datetime | None = None) -> str:
        body: dict[str, Any] = {"kind": KIND, "input": input}
        if run_at is not None:
            body["run_at"] = run_at.isoformat()
        return (await self._call("POST", "/api/v1/jobs", 202, body))["id"]

    async def get(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/jobs/{job_id}", 200)

    async def cancel(self, job_id: str) -> None:
        await self._call("POST", f"/api/v1/jobs/{job_id}/cancel", 200)

    def stream(self, job_id: str) -> Any:
        return self.http.get(f"/api/v1/jobs/{job_id}/stream")

    async def _call(self, method: str, path: str, status: int, body: Any = None) -> Any:
        async with self.http.request(method, path, json=body) as response:
            answer = await response.json(content_type=None)
            if response.status != status:
                raise RuntimeError(
                    f"{method} {path}: expected {status}, got {response.status}: {answer}"
                )
            return answer

    async def close(self) -> None:
        await self.http.close()


# --- load clients -----------------------------------------------------------------


class LoadClients:
    """``bench/sse_load.py`` processes sharing ``stages`` streams to ``jobs``
    (see its docstring for the protocol); their phases merged."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes

    @classmethod
    async def start(
        cls, account: Account, jobs: list[str], stages: list[int], args: argparse.Namespace
    ) -> LoadClients:
        count = args.client_processes
        processes = []
        for n in range(count):
            share = [stage // count + (n < stage % count) for stage in stages]
            config = {
                "url": account.base_url,
                "token": account.token,
                "tenant_id": account.tenant_id,
                "jobs": jobs[n:] + jobs[:n],
                "stages": share,
                "connect_concurrency": args.connect_concurrency,
                "cpu": CLIENT_CPU if args.pin else None,
            }
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.sse_load",
                    orjson.dumps(config).decode(),
                    cwd=REPO_ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=2**28,  # the ``done`` line lists every stream
                )
            )
        return cls(processes)

    async def phase(self, name: str) -> list[dict[str, Any]]:
        """The next line of every process, which must be phase ``name``."""
        lines = []
        for process in self.processes:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError(f"a load client exited (status {await process.wait()})")
            lines.append(orjson.loads(line))
            if lines[-1]["phase"] != name:
                raise RuntimeError(
                    f"expected phase {name!r} from a load client, got {line[:200]!r}"
                )
        return lines

    def tell(self, command: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(command.encode() + b"\n")

    async def finish(self, within: float | None = None) -> list[dict[str, Any]]:
        """The ``done`` phase: when every stream ended, or told to stop after ``within`` s."""
        waiting = asyncio.ensure_future(self.phase("done"))
        if within is not None:
            done, _ = await asyncio.wait((waiting,), timeout=within)
            if not done:
                self.tell("stop")
        lines = await waiting
        for process in self.processes:
            await process.wait()
        return lines

    def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()


def merged_streams(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [stream for line in lines for stream in line["streams"]]


# --- measures ---------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """``p50``, ``p99`` and ``max`` of ``values`` (None when empty)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99))
    return {"p50": p50, "p99": p99, "max": ordered[-1]}


@dataclass(slots=True)
class Run:
    """Everything measured, by scenario."""

    memory: list[dict[str, Any]] = field(default_factory=list)
    streams: dict[str, Any] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    load: dict[str, tuple[float, float]] = field(
        default_factory=dict
    )  # scenario -> (before, after)


async def sample(server: Server) -> CpuSample:
    return await asyncio.to_thread(server.tree.sample)


async def measure_memory(server: Server, jobs: Jobs, args: argparse.Namespace) -> list[dict]:
    """Gateway RSS added per stream at each stage of streams to one long job."""
    job = await jobs.submit(LONG_JOB)
    rss_before = server.tree.gateway_rss()
    clients = await LoadClients.start(jobs.account, [job], args.memory_streams, args)
    rows = []
    try:
        for stage, count in enumerate(args.memory_streams):
            opened = await clients.phase("opened")
            await asyncio.sleep(args.settle_seconds)
            added = server.tree.gateway_rss() - rss_before
            rows.append(
                {
                    "streams": count,
                    "failed": sum(line["failed"] for line in opened),
                    "seconds": max(line["seconds"] for line in opened),
                    "gateway_added": added,
                    "client_added": sum(line["rss_added"] for line in opened),
                }
            )
            progress(
                f"memory: {count} streams, {added / count / 1024:,.1f} KiB each in the gateway"
            )
            clients.tell("next" if stage + 1 < len(args.memory_streams) else "stop")
        await clients.finish()
    finally:
        clients.kill()
        await jobs.cancel(job)
    return rows


async def measure_streams(server: Server, jobs: Jobs, args: argparse.Namespace) -> dict:
    """``args.streams`` streams held ``args.hold_seconds`` with heartbeats flowing."""
    job = await jobs.submit(LONG_JOB)
    rss_before = server.tree.gateway_rss()
    clients = await LoadClients.start(jobs.account, [job], [args.streams], args)
    try:
        opened = await clients.phase("opened")
        rss_open = server.tree.gateway_rss()
        start = await sample(server)
        progress(f"streams: {args.streams} open, holding {args.hold_seconds:g} s")
        await asyncio.sleep(args.hold_seconds)
        end = await sample(server)
        rss_held = server.tree.gateway_rss()
        clients.tell("stop")
        done = await clients.finish()
    finally:
        clients.kill()
        await jobs.cancel(job)
    streams = merged_streams(done)
    pings = [stream["pings"] for stream in streams]
    return {
        "streams": args.streams,
        "open_seconds": max(line["seconds"] for line in opened),
        "failed_to_open": sum(line["failed"] for line in opened),
        "stayed_open": sum(stream["error"] is None for stream in streams),
        "errors": sorted({stream["error"] for stream in streams if stream["error"]})[:5],
        "held_seconds": min(line["held_seconds"] for line in done),
        "pings": {"min": min(pings), "median": statistics.median(pings), "max": max(pings)},
        "without_pings": sum(p == 0 for p in pings),
        "cpu": cpu_percent(start, end),
        "rss_before": rss_before,
        "rss_open": rss_open,
        "rss_held": rss_held,
        "client_cpu_seconds": sum(line["cpu_seconds"] for line in done),
        "client_rss_added": sum(line["rss_added"] for line in opened),
    }


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds from the POST to the 202, to ``running``, to the first ``progress``."""

    accepted: float
    running: float
    first_progress: float


async def first_progress(jobs: Jobs, input: dict[str, Any]) -> Timing:
    posted = time.monotonic()
    job = await jobs.submit(input)
    accepted, running = time.monotonic(), None
    async with asyncio.timeout(120), jobs.stream(job) as response:
        if response.status != 200:
            raise RuntimeError(f"GET stream of {job}: HTTP {response.status}")
        async for frame in frames(response.content):
            if frame.type == b"status" and running is None and b'"running"' in frame.data:
                running = time.monotonic()
            if frame.type == b"progress":
                now = time.monotonic()
                return Timing(accepted - posted, (running or now) - posted, now - posted)
    raise RuntimeError(f"the stream of job {job} ended without a progress event")


async def measure_latency(jobs: Jobs, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Sequential, then concurrent submits, each followed on its SSE stream."""
    input = {"to": args.latency_count_to, "pause_ms": args.latency_pause_ms}
    await asyncio.gather(*(first_progress(jobs, input) for _ in range(5)))  # warm up
    sequential = [await first_progress(jobs, input) for _ in range(args.submits)]
    progress("latency: sequential done")
    rows = [_latency_row("sequential", sequential)]
    for mode in ("concurrent", "concurrent, again"):  # again: do Ray's fresh workers help?
        burst = [first_progress(jobs, input) for _ in range(args.submits)]
        rows.append(_latency_row(mode, await asyncio.gather(*burst, return_exceptions=True)))
    return rows


def _latency_row(mode: str, outcomes: Sequence[Timing | BaseException]) -> dict[str, Any]:
    """Percentiles over the submits that got their first progress; the others named."""
    timings = [t for t in outcomes if isinstance(t, Timing)]
    failures = [str(f) for f in outcomes if not isinstance(f, Timing)]
    return {
        "mode": mode,
        "submits": len(outcomes),
        "failed": len(failures),
        "failures": sorted(set(failures))[:3],
        **{
            name: percentiles([getattr(t, name) for t in timings])
            for name in ("accepted", "running", "first_progress")
        },
    }


async def measure_throughput(server: Server, jobs: Jobs, args: argparse.Namespace) -> dict:
    """``args.jobs`` jobs, ``args.subscribers`` SSE streams each, opened before they start."""
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.start_delay)
    starts_at = time.monotonic() + args.start_delay
    input = {"to": args.count_to, "pause_ms": args.pause_ms}
    ids = [await jobs.submit(input, run_at) for _ in range(args.jobs)]
    total = args.jobs * args.subscribers
    clients = await LoadClients.start(jobs.account, ids, [total], args)
    try:
        opened = await clients.phase("opened")
        late = max(line["at"] for line in opened) > starts_at
        progress(f"throughput: {total} streams open{' (late!)' if late else ''}")
        await asyncio.sleep(max(0.0, starts_at - time.monotonic()))
        start = await sample(server)
        done = await clients.finish(within=args.timeout)
        end = await sample(server)
    finally:
        clients.kill()
    finals = {job["id"]: job for job in await asyncio.gather(*(jobs.get(i) for i in ids))}
    return _throughput(merged_streams(done), finals, done, late) | {"cpu": cpu_percent(start, end)}


def _throughput(
    streams: list[dict[str, Any]], finals: dict[str, dict], done: list[dict], late: bool
) -> dict[str, Any]:
    started = [s["running_at"] for s in streams if s["running_at"] is not None]
    ended = [s["final_at"] for s in streams if s["final_at"] is not None]
    window = max(ended) - min(started) if started and ended else float("nan")
    complete = [
        s
        for s in streams
        if s["final"] and s["violations"] == 0 and s["last_seq"] == finals[s["job"]]["last_seq"]
    ]
    produced = sum(job["last_seq"] - 1 for job in finals.values())  # all but `queued`
    progress_by_job = {s["job"]: s["progress"] for s in complete}
    return {
        "window": window,
        "statuses": sorted({job["status"] for job in finals.values()}),
        "produced_per_s": produced / window,
        "progress_produced_per_s": sum(progress_by_job.values()) / window,
        "delivered_per_s": sum(s["live"] for s in streams) / window,
        "progress_delivered_per_s": sum(s["progress"] for s in streams) / window,
        "subscribers": len(streams),
        "complete": len(complete),
        "lost": sum(max(0, finals[s["job"]]["last_seq"] - s["events"]) for s in streams),
        "violations": sum(s["violations"] for s in streams),
        "without_final": sum(not s["final"] for s in streams),
        "errors": sorted({s["error"] for s in streams if s["error"]})[:5],
        "lag": percentiles([lag for line in done for lag in line["lags"]]),
        "late": late,
        "client_cpu_seconds": sum(line["cpu_seconds"] for line in done),
    }


# --- a run ------------------------------------------------------------------------


async def scenario(run: Run, name: str, server: Server, jobs: Jobs, args: Any) -> None:
    await asyncio.sleep(args.settle_seconds)  # the previous scenario's streams are let go
    before = os.getloadavg()[0]
    progress(f"{name}: starting (load average {before:.2f})")
    if name == "memory":
        run.memory = await measure_memory(server, jobs, args)
    elif name == "streams":
        run.streams = await measure_streams(server, jobs, args)
    elif name == "latency":
        run.latency = await measure_latency(jobs, args)
    else:
        run.throughput = await measure_throughput(server, jobs, args)
    run.load[name] = (before, os.getloadavg()[0])


async def bench(args: argparse.Namespace) -> Run:
    run = Run()
    with tempfile.TemporaryDirectory(prefix="hubbub-jobs-") as tmp:
        server = start_server("hubbub", Path(tmp), server_settings(args))
        try:
            await wait_ready(server)
            progress(f"gateway pid {server.process.pid} ready on port {server.port}")
            account = await provision(server.base_url)
            if args.pin:
                progress(f"{server.tree.pin(SERVER_CPU)} server processes pinned to core 0")
                os.sched_setaffinity(0, {CLIENT_CPU})
            jobs = Jobs(account)
            try:
                for name in args.scenarios:
                    await scenario(run, name, server, jobs, args)
            finally:
                await jobs.close()
        except BaseException:
            print(f"--- hubbub log ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            await asyncio.to_thread(stop_server, server)
            if args.server_log is not None:
                shutil.copyfile(server.log, args.server_log)
    return run


# --- report -----------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:,.1f}"


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f}"


def _mib(value: float) -> str:
    return f"{value / 1024**2:,.0f}"


def _cpu(cpu: dict[str, float]) -> str:
    parts = sorted(cpu.items(), key=lambda item: -item[1])
    return ", ".join(f"{group} {pct:.0f} %" for group, pct in parts if pct >= 0.5) or "idle"


def _load(run: Run, name: str) -> str:
    before, after = run.load[name]
    return f"load average (1 min) {before:.2f} before, {after:.2f} after"


def memory_table(run: Run) -> str:
    lines = [
        "| streams open | opened in s | failed | gateway RSS added MiB | gateway KiB per stream "
        "| client KiB per stream |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for r in run.memory:
        n = r["streams"]
        cells = [f"{n:,}", f"{r['seconds']:.1f}", str(r["failed"]), _mib(r["gateway_added"])]
        cells += [f"**{_kib(r['gateway_added'] / n)}**", _kib(r["client_added"] / n)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n({_load(run, 'memory')}.)"


def streams_table(run: Run, args: argparse.Namespace) -> str:
    s = run.streams
    pings = s["pings"]
    rows = [
        ("streams opened", f"{s['streams']:,} in {s['open_seconds']:.1f} s"),
        ("failed to open", f"{s['failed_to_open']:,}"),
        ("still open after the hold", f"**{s['stayed_open']:,}**"),
        ("held", f"{s['held_seconds']:.1f} s, heartbeat every {args.heartbeat_seconds:g} s"),
        (
            "heartbeats per stream (min / median / max)",
            f"{pings['min']} / {pings['median']:g} / {pings['max']}",
        ),
        ("streams without a heartbeat", f"{s['without_pings']:,}"),
        ("server CPU while held, % of one core", _cpu(s["cpu"])),
        (
            "gateway RSS MiB (before / open / after the hold)",
            f"{_mib(s['rss_before'])} / {_mib(s['rss_open'])} / {_mib(s['rss_held'])}",
        ),
        (
            "load client",
            f"{_kib(s['client_rss_added'] / s['streams'])} KiB per stream, "
            f"{s['client_cpu_seconds']:.1f} CPU s in all",
        ),
    ]
    if s["errors"]:
        rows.append(("errors seen", "; ".join(f"`{e}`" for e in s["errors"])))
    lines = ["| | |", "|---|--:|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + f"\n\n({_load(run, 'streams')}.)"


def latency_table(run: Run) -> str:
    lines = [
        "| submits | POST → 202 p50 / p99 / max ms | → `running` p50 / p99 / max ms "
        "| → first `progress` p50 / p99 / max ms |",
        "|---|--:|--:|--:|",
    ]
    for r in run.latency:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [f"{r['submits']} {r['mode']}{failed}"]
        for name in ("accepted", "running", "first_progress"):
            p = r[name]
            cells.append(f"{_ms(p['p50'])} / {_ms(p['p99'])} / {_ms(p['max'])}")
        lines.append("| " + " | ".join(cells) + " |")
    failures = sorted({f for r in run.latency for f in r["failures"]})
    notes = "".join(f"\n\nA failed submit: `{f}`" for f in failures)
    return "\n".join(lines) + notes + f"\n\n({_load(run, 'latency')}.)"


def throughput_table(run: Run, args: argparse.Namespace) -> str:
    t = run.throughput
    lag = t["lag"]
    rows = [
        (
            "subscribers (jobs by streams each)",
            f"{t['subscribers']:,} ({args.jobs} jobs, {args.subscribers} each)",
        ),
        ("window (first `running` → last final status)", f"{t['window']:.1f} s"),
        ("events committed by the handlers / s", f"{t['produced_per_s']:,.0f}"),
        ("of which `progress` / s", f"{t['progress_produced_per_s']:,.0f}"),
        ("events delivered to subscribers / s", f"**{t['delivered_per_s']:,.0f}**"),
        ("`progress` events delivered / s", f"**{t['progress_delivered_per_s']:,.0f}**"),
        (
            "commit → arrival of live `progress`, p50 / p99 / max ms",
            f"{_ms(lag['p50'])} / {_ms(lag['p99'])} / {_ms(lag['max'])}",
        ),
        (
            "subscribers with every event, in order, ending with the final status",
            f"**{t['complete']:,} of {t['subscribers']:,}**",
        ),
        (
            "events lost / seq order violations / streams without final status",
            f"{t['lost']} / {t['violations']} / {t['without_final']}",
        ),
        ("job outcomes", ", ".join(t["statuses"])),
        ("server CPU over the window, % of one core", _cpu(t["cpu"])),
        ("load client CPU", f"{t['client_cpu_seconds']:.1f} s"),
    ]
    if t["late"]:
        rows.append(("note", "some streams opened after the jobs started (they replayed)"))
    if t["errors"]:
        rows.append(("errors seen", "; ".join(f"`{e}`" for e in t["errors"])))
    lines = ["| | |", "|---|--:|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + f"\n\n({_load(run, 'throughput')}.)"


def report(run: Run, args: argparse.Namespace) -> str:
    blocks = []
    if run.memory:
        blocks.append(
            f"### Memory per open SSE stream\n\nStreams to one running job (`{KIND}` "
            f"`{orjson.dumps(LONG_JOB).decode()}`), opened "
            f"{args.connect_concurrency} at a time; RSS read {args.settle_seconds:g} s after "
            f"each stage opened, minus the gateway's RSS before the first.\n\n{memory_table(run)}"
        )
    if run.streams:
        blocks.append(
            f"### Concurrent SSE streams held by one gateway\n\n{streams_table(run, args)}"
        )
    if run.latency:
        blocks.append(
            f"### Submit → first progress event\n\n`{KIND}` "
            f'`{{"to": {args.latency_count_to}, "pause_ms": {args.latency_pause_ms}}}`, '
            f"followed over its SSE stream opened right after the 202 (`after_seq=0`), "
            f"after 5 warm-up jobs.\n\n{latency_table(run)}"
        )
    if run.throughput:
        blocks.append(
            f"### Progress events to {args.jobs * args.subscribers:,} SSE subscribers\n\n"
            f'{args.jobs} `{KIND}` jobs `{{"to": {args.count_to}, "pause_ms": '
            f"{args.pause_ms}}}` (progress, counters and output at every number, a log line "
            f"at every tenth), submitted with `run_at` {args.start_delay:g} s ahead; their "
            f"streams open before they start.\n\n{throughput_table(run, args)}"
        )
    return "\n\n".join(blocks)


def section(run: Run, args: argparse.Namespace) -> str:
    command = shlex.join(["python", "-m", "bench.jobs_bench", *sys.argv[1:]])
    placement = (
        f"server and everything it started pinned to core {SERVER_CPU}, load clients and "
        f"driver to core {CLIENT_CPU}"
        if args.pin
        else "not pinned"
    )
    settings = ", ".join(f"`{k}={v}`" for k, v in server_settings(args).items())
    return f"""{SECTION}

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}; {placement}.

```sh
{command}
```

One gateway, `hubbub serve` in zero-setup mode (embedded Postgres and Valkey, a local
Ray) with {settings}; everything through its public HTTP API as one tenant owner. SSE
clients are `bench/sse_load.py` processes (aiohttp, {args.client_processes} process(es)).
CPU is in % of one core: the gateway process, and what it started (Ray shards, Ray
system processes and job workers, Postgres, Valkey).

{report(run, args)}
"""


# --- command line -----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jobs_bench",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--scenarios", type=_scenarios, default=list(SCENARIOS), help=",".join(SCENARIOS))
    add("--heartbeat-seconds", type=float, default=1.0, help="HUBBUB_SSE_HEARTBEAT_SECONDS")
    add("--report-seconds", type=float, default=0.1, help="HUBBUB_JOB_REPORT_SECONDS")
    add("--memory-streams", type=_counts, default=[1000, 5000], help="streams open per stage")
    add("--settle-seconds", type=float, default=2.0, help="wait before reading RSS")
    add("--streams", type=int, default=5000, help="streams held in the streams scenario")
    add("--hold-seconds", type=float, default=30.0, help="how long they are held")
    add("--submits", type=int, default=200, help="sequential, then concurrent (twice) submits")
    add("--latency-count-to", type=int, default=20, help="latency jobs' `to`")
    add("--latency-pause-ms", type=int, default=10, help="latency jobs' `pause_ms`")
    add("--jobs", type=int, default=10, help="jobs in the throughput scenario")
    add("--subscribers", type=int, default=100, help="SSE streams per job")
    add("--count-to", type=int, default=2000, help="throughput jobs' `to`")
    add("--pause-ms", type=int, default=10, help="throughput jobs' `pause_ms`")
    add("--start-delay", type=float, default=60.0, help="throughput jobs' run_at, s ahead")
    add("--timeout", type=float, default=600.0, help="throughput: stop streams after this")
    add("--client-processes", type=int, default=1, help="SSE load client processes")
    add("--connect-concurrency", type=int, default=100, help="streams opening at once, per client")
    add("--no-pin", dest="pin", action="store_false", help="do not pin server and clients")
    add("--write", type=Path, help="update this Markdown file's jobs section")
    add("--server-log", type=Path, help="keep the gateway's log here")
    args = parser.parse_args(argv)
    args.pin = args.pin and (os.cpu_count() or 1) >= 2
    return args


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if any(count < 1 for count in counts) or counts != sorted(counts):
        raise argparse.ArgumentTypeError(f"expected increasing positive integers, got {text!r}")
    return counts


def _scenarios(text: str) -> list[str]:
    names = text.split(",")
    if not names or not set(names) <= set(SCENARIOS):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(SCENARIOS)}; got {text!r}")
    return [name for name in SCENARIOS if name in names]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    progress(f"open files: up to {raise_fd_limit():,}; {machine()}")
    run = asyncio.run(bench(args))
    print(report(run, args))
    if args.write is not None:
        write_section(args.write, section(run, args), SECTION)
        progress(f"updated {args.write}")


if __name__ == "__main__":
    main()
