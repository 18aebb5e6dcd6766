"""Chat fan-out: 1,000 Socket.IO clients in rooms of 10, hubbub vs a bare relay.

One gateway, 1,000 websocket clients (1,000 distinct users) in 100 group
conversations of 10, one sender per conversation. The senders send open loop
at a total rate that steps up (500, 1,000, 2,000, 4,000, 8,000 messages/s
after a warm-up); each message takes hubbub's real path (``message:send`` →
committed → ``message:new`` to each of the 10 members, sender included).
Latency counts from the send's *scheduled* time, so a backed-up server shows.
The same run measures ``bench/relay.py``, a bare python-socketio relay with
default settings, driven by the same load generator, for the ratio.

Per step: delivered messages/s and deliveries/s, send→deliver latency, ack
latency, loss (acked but not delivered to every member within the drain
window), order violations (a receiver seeing a seq go backwards or repeat),
server CPU (the gateway process alone, and with every process it runs: Ray,
Postgres, Valkey) and load-generator CPU; per target, gateway memory per
connection. The ladder stops after the first step that loses messages or
whose p99 passes ``--give-up-ms`` (``--keep-going`` runs every rate).

The load generator (``bench/js/loadgen.mjs``, Node, raw ``ws``) is pinned to
core 1 and the server, with everything it started, to core 0 when ``taskset``
exists and there are two cores or more. hubbub runs as ``hubbub serve`` in
zero-setup mode (embedded Postgres and Valkey, local Ray) in a temporary
directory and is provisioned through its HTTP API before it is pinned (1,000
argon2 hashes take minutes on one core). Run from the repository root, once
``npm ci --prefix bench/js`` has installed ``ws``::

    python -m bench.fanout_bench
    python -m bench.fanout_bench --rates 200,500 --step-seconds 5   # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import aiohttp

psutil: ModuleType | None
try:
    import psutil
except ImportError:  # the bench reads /proc itself then
    psutil = None

__all__ = ["TargetRun", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
LOADGEN = REPO_ROOT / "bench" / "js" / "loadgen.mjs"
SECTION = "## Chat fan-out: 1,000 Socket.IO clients"
PASSWORD = "fan-out bench password, long enough"
SERVER_CPU, LOADGEN_CPU = 0, 1
TITLES = {"hubbub": "hubbub", "relay": "bare python-socketio relay"}
TIMES = "\N{MULTIPLICATION SIGN}"
GATEWAY = "gateway"
T = TypeVar("T")

#: What the bench sets for hubbub beyond the zero-setup defaults, and why.
HUBBUB_SETTINGS = {
    # 1,000 members in one tenant: the default first plan (free) allows 5.
    "HUBBUB_PLANS": json.dumps(
        {"bench": {"features": [], "limits": {"max_members": None}, "buckets": {}}}
    ),
    # Provisioning on a busy machine can outlast the default 15-minute tokens.
    "HUBBUB_ACCESS_TOKEN_MINUTES": "120",
    # The server gets one core: one shard per entity kind, as an operator sizes
    # shards to cores. Two shard processes on one core double the Ray calls and
    # group commits for nothing (measured: 1,000 msg/s then fails the bar).
    "HUBBUB_SHARDS": "1",
    # 100 senders at up to 8,000 msg/s is 80 a second each, past the default
    # send limits (20/second per socket, 600/minute per user), which a real chat
    # client never reaches: the bench measures fan-out, not refusals.
    "HUBBUB_MESSAGE_LIMIT_PER_SOCKET": "1000/second",
    "HUBBUB_MESSAGE_LIMIT_PER_USER": "60000/minute",
    # Quiet the access log and the 1,000 invite mails written to the log.
    "HUBBUB_LOG_LEVEL": "WARNING",
    "HUBBUB_LOG_FORMAT": "console",
}


# --- the server's processes --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proc:
    ppid: int
    cpu: float  # user + system seconds
    rss: int  # bytes
    cmdline: str


def scan_processes() -> dict[int, Proc]:
    """Every visible process: parent, CPU seconds, RSS and command line."""
    return _scan_psutil() if psutil is not None else _scan_proc()


def _scan_psutil() -> dict[int, Proc]:
    assert psutil is not None
    found: dict[int, Proc] = {}
    for process in psutil.process_iter(["ppid", "cpu_times", "memory_info", "cmdline"]):
        info = process.info
        if info["cpu_times"] is None or info["memory_info"] is None:
            continue  # gone, or not ours to read
        cpu = info["cpu_times"].user + info["cpu_times"].system
        cmdline = " ".join(info["cmdline"] or ())
        found[process.pid] = Proc(info["ppid"], cpu, info["memory_info"].rss, cmdline)
    return found


def _scan_proc() -> dict[int, Proc]:
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    found: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            found[int(entry.name)] = Proc(int(fields[1]), cpu, int(fields[21]) * page, cmdline)
    return found


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float
    cpu: dict[int, float]  # pid -> CPU seconds, every process of the tree
    groups: dict[int, str]  # pid -> what it is (gateway, Postgres, ...)


@dataclass(frozen=True, slots=True)
class ServerTree:
    """A server process, its descendants, and the processes naming ``marker``
    (embedded Postgres daemonizes, so it is no child of the gateway)."""

    pid: int
    marker: str | None

    def members(self, procs: dict[int, Proc]) -> set[int]:
        children: defaultdict[int, list[int]] = defaultdict(list)
        for pid, proc in procs.items():
            children[proc.ppid].append(pid)
        marked = {p for p, proc in procs.items() if self.marker and self.marker in proc.cmdline}
        found, todo = set(), [self.pid, *marked]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children[pid])
        return found & procs.keys()

    def sample(self) -> CpuSample:
        procs = scan_processes()
        members = self.members(procs)
        groups = {pid: self.group(pid, procs[pid].cmdline) for pid in members}
        return CpuSample(time.monotonic(), {pid: procs[pid].cpu for pid in members}, groups)

    def group(self, pid: int, cmdline: str) -> str:
        """Which part of the server a process is, from its command line."""
        if pid == self.pid:
            return GATEWAY
        if cmdline.startswith("ray::ShardActor"):
            return "Ray shards"
        if cmdline.startswith("postgres:") or "/bin/postgres " in cmdline:
            return "Postgres"
        if "valkey-server" in cmdline:
            return "Valkey"
        return "Ray system" if "ray" in cmdline else "other"

    def gateway_rss(self) -> int:
        proc = scan_processes().get(self.pid)
        return proc.rss if proc else 0

    def pin(self, cpu: int) -> int:
        """Pin every thread of every process of the tree to ``cpu``; how many
        processes. Children started later inherit it."""
        pids = self.members(scan_processes())
        for pid in pids:
            for task in _tasks(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(task, {cpu})
        return len(pids)


def _tasks(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    return []


def cpu_percent(start: CpuSample, end: CpuSample) -> dict[str, float]:
    """CPU between two samples by process group, in % of one core."""
    wall = end.at - start.at
    used: defaultdict[str, float] = defaultdict(float)
    for pid, cpu in end.cpu.items():
        used[end.groups[pid]] += 100 * (cpu - start.cpu.get(pid, 0.0)) / wall
    return dict(used)


# --- starting and stopping a server -------------------------------------------------


@dataclass(slots=True)
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    tree: ServerTree

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(name: str, workdir: Path, settings: dict[str, str] | None = None) -> Server:
    """``hubbub serve`` (zero-setup, data in ``workdir``, ``settings`` beyond
    the defaults: :data:`HUBBUB_SETTINGS` unless given) or the relay, on a free port."""
    port, log = free_port(), workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}  # embedded all
    if name == "hubbub":
        data = workdir / "data"
        env |= HUBBUB_SETTINGS if settings is None else settings
        env |= {"HUBBUB_DATA_DIR": str(data), "HUBBUB_PORT": str(port)}
        env["HUBBUB_RAY_NAMESPACE"] = f"fanout-bench-{uuid.uuid4().hex[:8]}"
        command, marker = [sys.executable, "-m", "hubbub", "serve"], str(data)
    else:
        command, marker = [sys.executable, "-m", "bench.relay", "--port", str(port)], None
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(name, process, port, log, ServerTree(process.pid, marker))


async def wait_ready(server: Server, within: float = 180.0) -> None:
    path = "/health/ready" if server.name == "hubbub" else "/ready"
    async with aiohttp.ClientSession() as http, asyncio.timeout(within):
        while server.process.poll() is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(server.base_url + path) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")


def stop_server(server: Server, within: float = 90.0) -> None:
    """SIGINT (both stop what they started), then SIGKILL to every process left."""
    pids = server.tree.members(scan_processes())
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(within)
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()


# --- provisioning hubbub through its HTTP API -----------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    token: str
    user_id: str


class Api:
    """JSON calls to one gateway; anything but 200/201 is an error naming the call."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url

    async def post(
        self, path: str, body: Any, token: str | None = None, tenant: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if tenant:
            headers["X-Tenant-Id"] = tenant
        async with self.http.post(self.base_url + path, json=body, headers=headers) as response:
            answer = await response.json(content_type=None)
            if response.status not in (200, 201):
                raise RuntimeError(
                    f"POST {path}: expected 200/201, got {response.status}: {answer}"
                )
            return answer


async def gather_limited(
    jobs: Iterable[Callable[[], Awaitable[T]]], limit: int, label: str
) -> list[T]:
    """Run ``jobs`` with at most ``limit`` at once, in order; progress on stderr."""
    jobs = list(jobs)
    gate, done = asyncio.Semaphore(limit), 0

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        nonlocal done
        async with gate:
            result = await job()
        done += 1
        if done % 100 == 0 or done == len(jobs):
            progress(f"{label}: {done}/{len(jobs)}")
        return result

    return await asyncio.gather(*(one(job) for job in jobs))


async def provision(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """A tenant of ``args.clients`` users in groups of ``args.room_size``; one
    load-generator client spec per user (the group's creator sends)."""
    run = uuid.uuid4().hex[:8]
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        api = Api(http, base_url)
        owner = await api.post("/api/v1/auth/register", _account(run, 0))
        tenant = await api.post("/api/v1/tenants", {"name": "Fan-out bench"}, owner["access_token"])
        first = Member(owner["access_token"], owner["user"]["id"])
        invited = await gather_limited(
            (_invitee(api, tenant["id"], first, run, i) for i in range(1, args.clients)),
            args.provision_concurrency,
            "members",
        )
        members = [first, *invited]
        rooms = [members[i : i + args.room_size] for i in range(0, len(members), args.room_size)]
        conversations = await gather_limited(
            (_group(api, tenant["id"], room) for room in rooms), 8, "conversations"
        )
    return [
        {"token": m.token, "tenant_id": tenant["id"], "conversation_id": cid, "sender": i == 0}
        for room, cid in zip(rooms, conversations, strict=True)
        for i, m in enumerate(room)
    ]


def _account(run: str, index: int) -> dict[str, str]:
    return {"email": f"fanout-{run}-{index}@example.com", "password": PASSWORD, "name": "Bench"}


def _invitee(
    api: Api, tenant_id: str, owner: Member, run: str, index: int
) -> Callable[[], Awaitable[Member]]:
    """Invite, then accept as a new account: one argon2 hash per member."""

    async def join() -> Member:
        account = _account(run, index)
        path = f"/api/v1/tenants/{tenant_id}/invites"
        issued = await api.post(path, {"email": account["email"], "role": "member"}, owner.token)
        accept = {"token": issued["token"], "name": account["name"], "password": PASSWORD}
        tokens = await api.post("/api/v1/invites/accept", accept)
        return Member(tokens["access_token"], tokens["user"]["id"])

    return join


def _group(api: Api, tenant_id: str, room: list[Member]) -> Callable[[], Awaitable[str]]:
    async def create() -> str:
        body = {"kind": "group", "member_ids": [m.user_id for m in room[1:]]}
        created = await api.post("/api/v1/conversations", body, room[0].token, tenant_id)
        return created["id"]

    return create


def relay_clients(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [
        {"conversation_id": f"room-{i // args.room_size}", "sender": i % args.room_size == 0}
        for i in range(args.clients)
    ]


# --- driving the load generator -------------------------------------------------------


@dataclass(slots=True)
class Step:
    """One rate step: the load generator's result plus the server's CPU."""

    result: dict[str, Any]
    cpu: dict[str, float] = field(default_factory=dict)  # server CPU % by process group

    @property
    def gateway_cpu(self) -> float:
        return self.cpu.get(GATEWAY, 0.0)

    @property
    def server_cpu(self) -> float:
        return sum(self.cpu.values())

    @property
    def rate(self) -> int:
        return self.result["rate"]

    def passes(self, bar_ms: float) -> bool:
        r = self.result
        clean = not (r["lost"] or r["unacked"] or r["errors"] or r["violations"])
        return clean and r["latency_ms"]["p99"] is not None and r["latency_ms"]["p99"] < bar_ms


@dataclass(slots=True)
class TargetRun:
    name: str
    steps: list[Step] = field(default_factory=list)
    warmup: Step | None = None
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    bytes_per_connection: float = 0.0
    stopped_after: str | None = None

    def best(self, bar_ms: float) -> int | None:
        return max((s.rate for s in self.steps if s.passes(bar_ms)), default=None)

    def peak(self) -> float:
        return max((s.result["messages_per_s"] for s in self.steps), default=0.0)


def loadgen_config(url: str, adapter: str, clients: list[dict[str, Any]], args: Any) -> dict:
    steps = [
        {"label": str(rate), "rate": rate, "seconds": args.step_seconds} for rate in args.rates
    ]
    if args.warmup_seconds > 0:
        warmup = {"rate": args.warmup_rate or min(args.rates), "seconds": args.warmup_seconds}
        steps.insert(0, {"label": "warm-up", "warmup": True, **warmup})
    return {
        "url": url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
        "adapter": adapter,
        "clients": clients,
        "steps": steps,
        "drainSeconds": args.drain_seconds,
        "quietSeconds": 60.0,
        "gapSeconds": 1.0,
        "settleSeconds": 2.0,
        "connectConcurrency": args.connect_concurrency,
        "giveUpMs": args.give_up_ms,
        "keepGoing": args.keep_going,
    }


async def drive(server: Server, config: dict[str, Any], pin: bool) -> TargetRun:
    """Run the load generator against ``server``, sampling the server per phase."""
    run, watcher = TargetRun(server.name), PhaseWatcher(server)  # memory before connecting
    command = ["node", str(LOADGEN), "-"]
    if pin:
        command = ["taskset", "-c", str(LOADGEN_CPU), *command]
    loadgen = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_ROOT
    )
    assert loadgen.stdin is not None and loadgen.stdout is not None
    loadgen.stdin.write(json.dumps(config).encode())
    loadgen.stdin.close()
    async for line in loadgen.stdout:
        await watcher.handle(json.loads(line), run)
    if await loadgen.wait() != 0:
        raise RuntimeError(f"the load generator failed (exit {loadgen.returncode}); see above")
    return run


class PhaseWatcher:
    """Turns the load generator's phase lines into samples of the server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.rss_before = server.tree.gateway_rss()
        self.cpu_start: CpuSample | None = None
        self.cpu: dict[str, float] = {}

    async def handle(self, event: dict[str, Any], run: TargetRun) -> None:
        phase = event["phase"]
        if phase == "connected":
            await asyncio.sleep(1.0)  # the generator waits 2 s before joining
            added = self.server.tree.gateway_rss() - self.rss_before
            run.bytes_per_connection = added / event["clients"]
        elif phase == "step-start":
            self.cpu_start = await asyncio.to_thread(self.server.tree.sample)
        elif phase == "step-sent":
            assert self.cpu_start is not None
            end = await asyncio.to_thread(self.server.tree.sample)
            self.cpu = cpu_percent(self.cpu_start, end)
        elif phase == "step":
            self._step(Step(event, self.cpu), run)
        elif phase == "stopped":
            run.stopped_after = event["label"]
        if phase in ("connected", "joined", "done"):
            run.phases[phase] = event
        progress(f"{self.server.name}: {_describe(event)}")

    def _step(self, step: Step, run: TargetRun) -> None:
        if step.result["warmup"]:
            run.warmup = step
        else:
            run.steps.append(step)


def _describe(event: dict[str, Any]) -> str:
    if event["phase"] != "step":
        return json.dumps(event)
    r = event
    return (
        f"{r['label']}: {r['messages_per_s']:,.0f} msg/s, p50 {r['latency_ms']['p50']} ms, "
        f"p99 {r['latency_ms']['p99']} ms, lost {r['lost']}, unacked {r['unacked']}, "
        f"errors {r['errors']}, order {r['violations']}, loadgen CPU {r['loadgen_cpu_pct']}%"
    )


async def bench_target(name: str, workdir: Path, args: argparse.Namespace) -> TargetRun:
    server = start_server(name, workdir, HUBBUB_SETTINGS | args.settings)
    try:
        await wait_ready(server)
        progress(f"{name}: ready on port {server.port}")
        if name == "hubbub":
            clients = await provision(server.base_url, args)
        else:
            clients = relay_clients(args)
        if args.pin:
            progress(f"{name}: {server.tree.pin(SERVER_CPU)} processes pinned to core {SERVER_CPU}")
        config = loadgen_config(server.base_url, name, clients, args)
        async with asyncio.timeout(args.timeout):
            return await drive(server, config, args.pin)
    except BaseException:
        print(f"--- {name} log ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        await asyncio.to_thread(stop_server, server)


async def bench(args: argparse.Namespace) -> dict[str, TargetRun]:
    runs: dict[str, TargetRun] = {}
    with tempfile.TemporaryDirectory(prefix="hubbub-fanout-") as tmp:
        for name in args.targets:
            runs[name] = await bench_target(name, Path(tmp), args)
    return runs


def progress(text: str) -> None:
    print(f"[fanout] {text}", file=sys.stderr, flush=True)


# --- report ----------------------------------------------------------------------------


def table(run: TargetRun, bar_ms: float) -> str:
    header = ("rate msg/s", "delivered msg/s", "deliveries/s", "p50 ms", "p99 ms", "max ms")
    header += ("ack p50 ms", "ack p99 ms", "loss", "order", "server CPU % (gateway / all)")
    header += ("loadgen CPU %",)
    lines = ["| " + " | ".join(header) + " |", "|" + "--:|" * len(header)]
    lines += [_row(step, bar_ms) for step in run.steps]
    if run.stopped_after is not None:
        lines.append(f"\nStopped after the {run.stopped_after} msg/s step (it failed badly).")
    return "\n".join(lines)


def _row(step: Step, bar_ms: float) -> str:
    r, lat, ack = step.result, step.result["latency_ms"], step.result["ack_ms"]
    rate = f"**{r['rate']:,}**" if step.passes(bar_ms) else f"{r['rate']:,}"
    cells = [rate, f"{r['messages_per_s']:,.0f}", f"{r['deliveries_per_s']:,.0f}"]
    cells += [_ms(lat["p50"]), _ms(lat["p99"]), _ms(lat["max"]), _ms(ack["p50"]), _ms(ack["p99"])]
    cells += [_loss(r), str(r["violations"])]
    cells += [f"{step.gateway_cpu:.0f} / {step.server_cpu:.0f}", f"{r['loadgen_cpu_pct']:.0f}"]
    return "| " + " | ".join(cells) + " |"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _loss(r: dict[str, Any]) -> str:
    extra = [f"{r[k]} {k}" for k in ("unacked", "errors") if r[k]]
    return str(r["lost"]) + (f" (+{', '.join(extra)})" if extra else "")


def cpu_table(run: TargetRun) -> str:
    """Server CPU by process group per step; empty for a one-process server."""
    totals: defaultdict[str, float] = defaultdict(float)
    for step in run.steps:
        for group, pct in step.cpu.items():
            totals[group] += pct
    groups = sorted(totals, key=lambda g: (g != GATEWAY, -totals[g]))
    if len(groups) < 2:
        return ""
    lines = [
        "| rate msg/s | " + " | ".join(groups) + " | all |",
        "|" + "--:|" * (len(groups) + 2),
    ]
    for step in run.steps:
        cells = [f"{step.rate:,}", *(f"{step.cpu.get(g, 0.0):.0f}" for g in groups)]
        lines.append("| " + " | ".join([*cells, f"{step.server_cpu:.0f}"]) + " |")
    return "Server CPU by process, % of one core over the sending window:\n\n" + "\n".join(lines)


def details(run: TargetRun) -> str:
    connected, joined = run.phases.get("connected", {}), run.phases.get("joined", {})
    done = run.phases.get("done", {})
    return (
        f"Gateway memory per connection: {run.bytes_per_connection / 1024:,.1f} KiB "
        f"(RSS after connecting minus before, ÷ {connected.get('clients', 0):,}); "
        f"connecting took {connected.get('seconds', 0):.1f} s, joining "
        f"{joined.get('seconds', 0):.1f} s; deliveries after a step's drain window: "
        f"{done.get('late_deliveries', 0)}; sockets dropped by the server: "
        f"{done.get('disconnects', 0)}."
    )


def summary(runs: dict[str, TargetRun], bar_ms: float) -> str:
    ordered = sorted(runs.items())  # hubbub first
    best = {name: run.best(bar_ms) for name, run in ordered}
    parts = [
        f"{TITLES[name]}: **{rate:,} msg/s**" if rate else f"{TITLES[name]}: none of the rates"
        for name, rate in best.items()
    ]
    text = f"Highest rate with p99 < {bar_ms:g} ms and no loss — " + "; ".join(parts) + "."
    if best.get("hubbub") and best.get("relay"):
        text += f" Ratio hubbub ÷ relay: **{best['hubbub'] / best['relay']:.1f}{TIMES}**."
    peak = {name: run.peak() for name, run in ordered}
    text += " Most delivered in a step, whatever the latency — " + "; ".join(
        f"{TITLES[name]}: {rate:,.0f} msg/s" for name, rate in peak.items()
    )
    if peak.get("hubbub") and peak.get("relay"):
        text += f" (ratio {peak['hubbub'] / peak['relay']:.2f}{TIMES})"
    return text + "."


def machine(pin: bool) -> str:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    ram = int((_proc_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0]) / 1024**2
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    placement = (
        f"server and everything it started pinned to core {SERVER_CPU}, load generator "
        f"to core {LOADGEN_CPU}"
        if pin
        else "not pinned (no taskset, or fewer than 2 cores)"
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {ram:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, python-socketio "
        f"{_version('python-socketio')}, Node {node}; {placement}"
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _proc_field(path: str, name: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def report(runs: dict[str, TargetRun], args: argparse.Namespace) -> str:
    blocks = [
        "\n\n".join(
            part
            for part in (
                f"### {TITLES[name]}",
                table(run, args.bar_ms),
                details(run),
                cpu_table(run),
            )
            if part
        )
        for name, run in sorted(runs.items())  # hubbub first
    ]
    return "\n\n".join([*blocks, f"**Summary.** {summary(runs, args.bar_ms)}"])


def section(runs: dict[str, TargetRun], args: argparse.Namespace) -> str:
    command = shlex.join(["python", "-m", "bench.fanout_bench", *sys.argv[1:]])
    return f"""{SECTION}

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine(args.pin)}.

```sh
{command}
```

{textwrap.fill(scenario(args), 90)}

{report(runs, args)}
"""


def scenario(args: argparse.Namespace) -> str:
    settings = ", ".join(f"`{k}`" for k in HUBBUB_SETTINGS | args.settings)
    return f"""{args.clients:,} Socket.IO websocket clients (one user each) on one gateway, in
{args.clients // args.room_size} group conversations of {args.room_size}; one sender per
conversation sends open loop at the step's total rate for {args.step_seconds:g} s (after a
{args.warmup_seconds:g} s warm-up). Latency is from each send's scheduled time to the
`message:new` at a member (every member, sender included), so a backed-up server shows in
it; *loss* counts messages acked but not delivered to every member within
{args.drain_seconds:g} s after the step (the next step starts once any backlog is
delivered), *order* a receiver seeing a seq go backwards or repeat. *Delivered msg/s* is
the step's deliveries ÷ members per room over the time from the step's start to its last
delivery. CPU is in % of one core over the sending window: the gateway process, and
everything it runs (Ray, Postgres, Valkey). hubbub runs `hubbub serve` in zero-setup mode
with {settings} set (see `HUBBUB_SETTINGS` in `bench/fanout_bench.py`); the relay is
`bench/relay.py`. **Bold** rates meet p99 < {args.bar_ms:g} ms with no loss."""


INTRO = """\
# Performance

Figures in this file were measured on the machine each section names, with the
benchmarks in `bench/`; they are not guarantees, and tests never assert on time.
"""


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of ``path`` (created if missing)."""
    current = path.read_text() if path.exists() else INTRO
    start = current.find(SECTION)
    if start < 0:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        rest = current[end + 1 :] if end >= 0 else ""
        updated = current[:start] + text + ("\n" + rest if rest else "")
    path.write_text(updated)


# --- command line ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout_bench", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--rates", type=_counts, default=[500, 1000, 2000, 4000, 8000], help="msg/s steps")
    add("--step-seconds", type=float, default=10.0, help="length of each rate step")
    add("--warmup-seconds", type=float, default=5.0, help="warm-up before the steps (0: none)")
    add("--warmup-rate", type=int, help="warm-up rate in msg/s (default: the lowest rate)")
    add("--drain-seconds", type=float, default=5.0, help="wait for a step's last deliveries")
    add("--clients", type=int, default=1000, help="websocket clients, one user each")
    add("--room-size", type=int, default=10, help="members per group conversation")
    add("--targets", type=_targets, default=["relay", "hubbub"], help="relay,hubbub or one")
    add("--bar-ms", type=float, default=100.0, help="the p99 a rate must stay under")
    add("--give-up-ms", type=float, default=1000.0, help="stop the ladder past this p99")
    add("--keep-going", action="store_true", help="run every rate even after a failed step")
    add("--provision-concurrency", type=int, default=4, help="hubbub signups at once")
    add("--connect-concurrency", type=int, default=50, help="handshakes and joins at once")
    add(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="HUBBUB_NAME=VALUE",
        help="a further hubbub setting (repeatable), e.g. HUBBUB_SHARDS=1",
    )
    add("--no-pin", dest="pin", action="store_false", help="do not pin server and generator")
    add("--timeout", type=float, default=1800.0, help="seconds per target before giving up")
    add(
        "--write-docs",
        nargs="?",
        type=Path,
        const=REPO_ROOT / "docs" / "performance.md",
        help="update this Markdown file's fan-out section (default docs/performance.md)",
    )
    args = parser.parse_args(argv)
    args.settings = dict(args.settings)
    args.pin = args.pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if args.clients % args.room_size:
        parser.error("--clients must be a multiple of --room-size")
    return args


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return counts


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not (name.startswith("HUBBUB_") and equals):
        raise argparse.ArgumentTypeError(f"expected HUBBUB_NAME=VALUE, got {text!r}")
    return name, value


def _targets(text: str) -> list[str]:
    names = text.split(",")
    if not names or not set(names) <= set(TITLES):
        raise argparse.ArgumentTypeError(f"expected hubbub, relay or both; got {text!r}")
    return names


def check_loadgen() -> None:
    if shutil.which("node") is None:
        sys.exit("fanout_bench: expected Node.js (node) on PATH for bench/js/loadgen.mjs")
    if not (LOADGEN.parent / "node_modules" / "ws").is_dir():
        sys.exit("fanout_bench: the load generator needs ws: npm ci --prefix bench/js")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_loadgen()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    progress(machine(args.pin))
    runs = asyncio.run(bench(args))
    print(report(runs, args))
    if args.write_docs is not None:
        write_section(args.write_docs, section(runs, args))


if __name__ == "__main__":
    main()
