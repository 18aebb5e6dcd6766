"""Recurring job schedules: a kind, its input and a cron expression,
evaluated in the tenant's timezone.

A schedule is a row of ``job_schedules`` with the time it next fires. The
job sweep (``hubbub.jobs.sweep``) fires the due ones, one round at a time
across gateways: it submits the schedule's job with an idempotency key
made of the schedule and the time it fired — so a round that dies between
the submit and moving ``next_run_at`` on gives the same job when the next
round fires it again — then moves ``next_run_at`` to the next time after
now. A schedule due while every gateway was down fires once at the first
round after start-up; the occurrences missed meanwhile are not replayed.
The tenant's timezone is read at each firing, so a change of it applies
from the schedule's next firing on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from croniter import croniter

from hubbub.errors import AppError, FieldError
from hubbub.http.cursors import decode_cursor, encode_cursor
from hubbub.jobs.dispatch import submit_job
from hubbub.jobs.registry import KINDS

__all__ = ["create", "delete", "fire_due", "listing", "next_fire", "parse_cron"]

log = logging.getLogger(__name__)

_FIRE_BATCH = 100
_DUE = """SELECT s.*, t.timezone FROM job_schedules s JOIN tenants t ON t.id = s.tenant_id
WHERE s.next_run_at <= now() ORDER BY s.next_run_at LIMIT $1 FOR UPDATE OF s SKIP LOCKED"""
_FIRED = """UPDATE job_schedules SET next_run_at = $2, last_run_at = $3, last_job_id = $4
WHERE id = $1"""
_INSERT = """INSERT INTO job_schedules (id, tenant_id, kind, input, cron, created_by,
  next_run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *"""
_PAGE = """SELECT * FROM job_schedules
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
ORDER BY created_at DESC, id DESC LIMIT $3"""
_TIMEZONE = "SELECT timezone FROM tenants WHERE id = $1"


def parse_cron(expression: str) -> str:
    """``expression`` if it is a valid five-field cron expression; 422 naming ``cron``."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        message = "expected a cron expression of five fields (minute hour day month weekday)"
        raise AppError(
            "validation_failed",
            f"{message}, got {expression[:100]!r}",
            status=422,
            errors=(FieldError("body", "cron", message),),
        )
    return expression


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time after ``after`` that ``expression`` names in ``timezone`` (UTC)."""
    local = after.astimezone(ZoneInfo(timezone))
    return croniter(expression, local).get_next(datetime).astimezone(UTC)


async def create(
    conn: asyncpg.Connection,
    schedule_id: str,
    tenant_id: str,
    kind: str,
    input: dict[str, Any],
    cron: str,
    created_by: str,
) -> dict[str, Any]:
    """A new schedule of the transaction's tenant, first due at its next time."""
    now = datetime.now(UTC)
    timezone = await conn.fetchval(_TIMEZONE, tenant_id)
    args = (schedule_id, tenant_id, kind, input, cron, created_by, next_fire(cron, timezone, now))
    return _view(await conn.fetchrow(_INSERT, *args, now))


async def listing(
    conn: asyncpg.Connection, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's schedules, newest first, and the next cursor."""
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(_PAGE, at, after_id, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], str(page[-1]["id"])) if more else None
    return [_view(row) for row in page], next_cursor


async def delete(conn: asyncpg.Connection, schedule_id: str) -> None:
    """Stop a schedule (its jobs already submitted go on); 404 if not the tenant's."""
    if (
        await conn.fetchval("DELETE FROM job_schedules WHERE id = $1 RETURNING id", schedule_id)
        is None
    ):
        raise AppError.not_found("schedule")


async def fire_due(conn: asyncpg.Connection, app: web.Application) -> int:
    """Submit the job of every due schedule and move it on; how many fired.

    ``conn`` is the sweep's transaction, which sees every tenant's schedules.
    """
    fired = 0
    for row in await conn.fetch(_DUE, _FIRE_BATCH):
        kind = KINDS.find(row["kind"])
        now = datetime.now(UTC)
        job_id = None
        if kind is None:
            log.warning("schedule %s names kind %r, unknown here; skipped", row["id"], row["kind"])
        else:
            key = f"schedule:{row['id']}:{row['next_run_at'].isoformat()}"
            tenant_id, user_id = str(row["tenant_id"]), str(row["created_by"])
            try:
                job = await submit_job(
                    app, tenant_id, user_id, kind, row["input"], key, schedule_id=str(row["id"])
                )
                job_id, fired = job["id"], fired + 1
            except AppError as error:  # e.g. a conflicting job is still running: skip this time
                log.info("schedule %s did not fire: %s", row["id"], error)
        following = next_fire(row["cron"], row["timezone"], now)
        await conn.execute(_FIRED, row["id"], following, now, job_id)
    return fired


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]),
        "kind": row["kind"],
        "input": row["input"],
        "cron": row["cron"],
        "created_by": str(row["created_by"]),
        "next_run_at": row["next_run_at"].isoformat(),
        "last_run_at": None if row["last_run_at"] is None else row["last_run_at"].isoformat(),
        "last_job_id": None if row["last_job_id"] is None else str(row["last_job_id"]),
        "created_at": row["created_at"].isoformat(),
    }
