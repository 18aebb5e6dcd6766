"""The job sweep: launches due jobs, supervises running ones, fires schedules.

Every gateway runs it every ``HUBBUB_JOB_SWEEP_SECONDS`` and at once after
a submit; a round first takes a transaction-scoped advisory lock, so one
round runs at a time across gateways (the others skip theirs). With
``hubbub.job_sweep`` set, migration 0012's policies show the round the
active and waiting jobs and the schedules of every tenant. Each change is
decided by the job's own entity, in its tenant's scope; the round only
proposes it.

A round:

1. **Fires** due schedules (``hubbub.jobs.schedules``); their jobs are
   launched by the same round.
2. **Supervises** the active jobs (running, or launched and waiting for
   their task to start). The deployment's launcher actor
   (``hubbub.actors.runtime.LauncherActor``) owns every job task; a job
   whose launch it no longer holds — the worker died, the launch never
   reached Ray, the launcher itself was restarted — is ``lost``: a running
   attempt failed (``worker_lost``: retried by the kind's policy, else the
   job fails), a launch that never started is made again. A running
   attempt past its timeout, or asked to stop more than
   ``HUBBUB_JOB_CANCEL_GRACE_SECONDS`` ago, is ended by ``supervise``, and
   its task is killed.
3. **Launches** due jobs — queued ones past their ``run_at``, retrying ones
   past their ``retry_at`` — highest priority first, oldest first, as long
   as their kind's per-tenant concurrency limit allows: ``dispatch`` tells
   the job which launch it waits on, then the launcher starts the tasks.

Nothing here is kept in memory between rounds: a job or schedule missed by
one round (a gateway died mid-round) is found by the next.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from hubbub.actors.command import Command, CommandBody
from hubbub.actors.router import Router
from hubbub.actors.runtime import Launcher, Task, open_launcher
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.http.metrics import METRICS
from hubbub.jobs.commands import Dispatch, Lost, Supervise
from hubbub.jobs.keys import SWEEP_ROUNDS
from hubbub.jobs.registry import KINDS, JobKind
from hubbub.jobs.schedules import fire_due
from hubbub.jobs.worker import Launch
from hubbub.metrics import JOB_QUEUE_DEPTH, JOBS_RUNNING
from hubbub.periodic import Periodic
from hubbub.services import Services
from hubbub.storage.database import Database

__all__ = ["JOB_SWEEP", "WORK", "JobSweep", "job_sweep"]

log = logging.getLogger(__name__)

#: The worker function every job task runs.
WORK = "hubbub.jobs.worker:run_job"
_LOCK = 0x6875_6262_6A6F_6273  # "hubbjobs": pg_try_advisory_xact_lock key of the sweep
_BATCH = 1000
_ACTIVE = """SELECT id, tenant_id, kind, status, launch_id, deadline, cancel_requested_at
FROM jobs
WHERE status = 'running' OR (status IN ('queued', 'retrying') AND launch_id IS NOT NULL)"""
# The due jobs that may launch now, in the order they should: a job of a
# kind with a concurrency limit only if its rank among its tenant's waiting
# jobs of that kind fits in the slots left, so jobs held back by a limit
# never fill the batch; and tenants take turns — a job's turn is its rank
# among its tenant's admissible jobs plus the tenant's active ones — with
# priority, then age, deciding within a turn.
_WAITING = """WITH active AS (
  SELECT tenant_id, kind, count(*) AS running FROM jobs
  WHERE status = 'running' OR (status IN ('queued', 'retrying') AND launch_id IS NOT NULL)
  GROUP BY tenant_id, kind
), tenant_active AS (
  SELECT tenant_id, sum(running) AS running FROM active GROUP BY tenant_id
), due AS (
  SELECT id, tenant_id, kind, input, priority, created_at, concurrency,
    row_number() OVER (PARTITION BY tenant_id, kind ORDER BY priority DESC, created_at) AS rank
  FROM jobs
  WHERE status IN ('queued', 'retrying') AND launch_id IS NULL
    AND coalesce(CASE WHEN status = 'retrying' THEN retry_at ELSE run_at END, '-infinity')
      <= now()
), admissible AS (
  SELECT due.* FROM due LEFT JOIN active USING (tenant_id, kind)
  WHERE due.concurrency IS NULL OR due.rank + coalesce(active.running, 0) <= due.concurrency
)
SELECT admissible.*, coalesce(tenant_active.running, 0)
    + row_number() OVER (PARTITION BY tenant_id ORDER BY priority DESC, created_at) AS turn
FROM admissible LEFT JOIN tenant_active USING (tenant_id)
ORDER BY turn, priority DESC, created_at LIMIT $1"""

_DEPTH = """SELECT
  count(*) FILTER (WHERE status <> 'running' AND launch_id IS NULL) AS waiting,
  count(*) FILTER (WHERE status = 'running' OR launch_id IS NOT NULL) AS active
FROM jobs WHERE status IN ('queued', 'running', 'retrying')"""

Slot = tuple[str, str]  # (tenant id, kind): what a concurrency limit counts


class JobSweep:
    """Owns: this gateway's sweep task.

    Concurrency: one task; across gateways one round at a time (advisory
    lock). Durability: every change is committed by a job entity; the
    launcher's tasks are the only state outside Postgres, and losing them
    is what supervision detects. Failure: a command or round that fails is
    logged and counted; the next round sees what is left.
    """

    def __init__(
        self,
        db: Database,
        router: Router,
        launcher: Launcher,
        app: web.Application,
        settings: Settings,
    ) -> None:
        self._db = db
        self._router = router
        self._launcher = launcher
        self._app = app
        self._grace = settings.job_cancel_grace_seconds
        self._backlog = settings.job_launch_backlog
        # Kicked by submits and by jobs that stop running: at most 20 rounds a second.
        self.rounds = Periodic("job sweep", settings.job_sweep_seconds, self.sweep, gap=0.05)
        self.failures = 0

    async def sweep(self) -> dict[str, int] | None:
        """One round: how many jobs it found lost, ended, launched and fired
        (None if another gateway sweeps)."""
        async with self._db.tenant(None) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            await conn.execute("SELECT set_config('hubbub.job_sweep', 'on', true)")
            fired = await fire_due(conn, self._app)
            active = await conn.fetch(_ACTIVE)
            try:
                lost, ended, still = await self._supervise(active)
                launched = await self._launch(await conn.fetch(_WAITING, _BATCH), still)
            except AppError as error:  # the launcher restarts: what it ran is lost
                log.warning("job sweep: launching and supervising wait: %s", error)
                return None
        return {"lost": lost, "ended": ended, "launched": launched, "fired": fired}

    async def measure(self) -> None:
        """Set the job queue gauges from Postgres (a metrics refresher):
        waiting jobs, due or not, and active ones, of every tenant."""
        async with self._db.tenant(None) as conn:
            await conn.execute("SELECT set_config('hubbub.job_sweep', 'on', true)")
            counts = await conn.fetchrow(_DEPTH)
        JOB_QUEUE_DEPTH.set(counts["waiting"])
        JOBS_RUNNING.set(counts["active"])

    async def _supervise(
        self, active: Sequence[asyncpg.Record]
    ) -> tuple[int, int, list[asyncpg.Record]]:
        """Tell lost and overdue jobs; how many, and the jobs still active."""
        alive = await self._launcher.alive({str(r["id"]): r["launch_id"] for r in active})
        now = datetime.now(UTC)
        grace = timedelta(seconds=self._grace)
        lost = [r for r in active if str(r["id"]) not in alive]
        overdue = [
            r
            for r in active
            if str(r["id"]) in alive
            and r["status"] == "running"
            and (
                (r["deadline"] is not None and r["deadline"] <= now)
                or (
                    r["cancel_requested_at"] is not None and r["cancel_requested_at"] + grace <= now
                )
            )
        ]
        lost_replies = await self._ask([(r, Lost(r["launch_id"])) for r in lost])
        ended_replies = await self._ask([(r, Supervise(self._grace)) for r in overdue])
        ended = {
            str(r["id"]): r["launch_id"]
            for r, reply in zip(overdue, ended_replies, strict=True)
            if reply is not None and reply["status"] != "running"
        }
        await self._launcher.kill(ended)
        gone = {str(r["id"]) for r in lost} | set(ended)
        still = [r for r in active if str(r["id"]) not in gone]
        return sum(reply is not None for reply in lost_replies), len(ended), still

    async def _launch(
        self, waiting: Sequence[asyncpg.Record], active: Sequence[asyncpg.Record]
    ) -> int:
        """Dispatch and launch, in order, the waiting jobs their kinds' limits
        and the room left in Ray's queue (``HUBBUB_JOB_LAUNCH_BACKLOG``) allow."""
        busy = Counter((str(r["tenant_id"]), r["kind"]) for r in active)
        room = self._backlog - sum(r["status"] != "running" for r in active)
        chosen: list[tuple[asyncpg.Record, JobKind, str]] = []
        for row in waiting:
            if len(chosen) >= room:
                break
            kind = KINDS.find(row["kind"])
            if kind is None:
                log.warning("job %s has kind %r, unknown to this gateway", row["id"], row["kind"])
                continue
            slot = (str(row["tenant_id"]), kind.name)
            limit = row["concurrency"]  # the job's own, copied from its kind at submit
            if limit is not None and busy[slot] >= limit:
                continue
            busy[slot] += 1
            chosen.append((row, kind, uuid.uuid4().hex))
        replies = await self._ask([(row, Dispatch(lid)) for row, _, lid in chosen])
        tasks = [
            _task(row, kind, launch_id)
            for (row, kind, launch_id), reply in zip(chosen, replies, strict=True)
            if reply is not None and reply["launch_id"] == launch_id
        ]
        await self._launcher.launch(tasks)
        return len(tasks)

    async def _ask(
        self, commands: Sequence[tuple[asyncpg.Record, CommandBody]]
    ) -> list[dict[str, Any] | None]:
        """Each job's reply to its command ``(row, body)``; None where it failed."""

        async def one(row: asyncpg.Record, body: CommandBody) -> dict[str, Any] | None:
            job = Command("job", str(row["id"]), body, str(row["tenant_id"]))
            try:
                return await self._router.send(job)
            except AppError as error:
                self.failures += 1
                name = type(body).__name__.lower()
                log.warning("job sweep: %s of job %s failed (%s)", name, row["id"], error)
                return None

        return list(await asyncio.gather(*(one(*command) for command in commands)))


def _task(row: asyncpg.Record, kind: JobKind, launch_id: str) -> Task:
    job_id, tenant_id = str(row["id"]), str(row["tenant_id"])
    work = Launch(launch_id, job_id, tenant_id, kind.name, kind.module, row["input"], kind.entities)
    return Task(job_id, launch_id, WORK, work.to_payload(), ("job", *kind.entities), kind.resources)


JOB_SWEEP = web.AppKey("job_sweep", JobSweep)


async def job_sweep(services: Services) -> AsyncIterator[None]:
    """A start hook: the deployment's launcher and this gateway's sweep (before
    the job feeds, which kick it when a job stops running)."""
    settings = services.settings
    launcher = await asyncio.to_thread(open_launcher, settings)
    sweep = services.app[JOB_SWEEP] = JobSweep(
        services.db, services.router, launcher, services.app, settings
    )
    services.app[SWEEP_ROUNDS] = sweep.rounds
    services.app[METRICS].refresh_with(sweep.measure)
    sweep.rounds.start()
    yield
    await sweep.rounds.close()
