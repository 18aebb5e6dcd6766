"""What the gateway reads of jobs straight from Postgres.

Reads need no entity: they see committed state only (the entity replies and
publishes after commit), in the caller's tenant scope (row-level security),
so another tenant's job reads as absent and the HTTP layer answers 404. A
private kind's job reads as absent, too, to a :class:`Viewer` who neither
created it nor manages the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hubbub.errors import AppError, FieldError
from hubbub.http.cursors import decode_cursor, encode_cursor
from hubbub.jobs.events import stream_event
from hubbub.jobs.rows import state_from_row
from hubbub.jobs.state import TERMINAL
from hubbub.jobs.view import view
from hubbub.tenancy.roles import at_least

__all__ = [
    "Viewer",
    "check_after_seq",
    "events_after",
    "final_status",
    "job",
    "jobs",
    "stream_after",
]

_JOB = "SELECT * FROM jobs WHERE id = $1 AND (NOT private OR created_by = $2 OR $3)"
_JOBS = """SELECT * FROM jobs
WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
  AND ($6::text[] IS NULL OR kind = ANY($6))
  AND (NOT private OR created_by = $7 OR $8)
ORDER BY created_at DESC, id DESC LIMIT $5"""
_EVENTS = """SELECT job_id, seq, type, data, created_at FROM job_events
WHERE job_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4"""
_LAST_STATUS = """SELECT job_id, seq, type, data, created_at FROM job_events
WHERE job_id = $1 AND type = 'status' ORDER BY seq DESC LIMIT 1"""
_NO_END = 2**62


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads jobs; ``None`` where one reads who is allowed already (the
    job's own follower, a signup's stream link)."""

    user_id: str
    manages: bool  # a tenant owner or admin: sees private jobs too

    @classmethod
    def member(cls, user_id: str, role: str) -> Viewer:
        """A tenant member with ``role``."""
        return cls(user_id, manages=at_least(role, "admin"))


def _who(viewer: Viewer | None) -> tuple[str | None, bool]:
    return (None, True) if viewer is None else (viewer.user_id, viewer.manages)


async def job(conn: asyncpg.Connection, job_id: str, viewer: Viewer | None) -> dict[str, Any]:
    """The job's view; 404 if it is not in the transaction's tenant, or
    private and not the viewer's to see."""
    row = await conn.fetchrow(_JOB, job_id, *_who(viewer))
    if row is None:
        raise AppError.not_found("job")
    return _job_view(row)


async def jobs(
    conn: asyncpg.Connection,
    kind: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    viewer: Viewer,
    kinds: list[str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's jobs the viewer may see, newest first, and the
    next cursor; ``kinds`` keeps only jobs of those kinds (a workflow's runs)."""
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(_JOBS, kind, status, at, after_id, limit + 1, kinds, *_who(viewer))
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], str(page[-1]["id"])) if more else None
    return [_job_view(row) for row in page], next_cursor


async def events_after(
    conn: asyncpg.Connection, job_id: str, after_seq: int, limit: int, viewer: Viewer
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Up to ``limit`` events after ``after_seq`` in order, and the job's view."""
    view = await job(conn, job_id, viewer)
    check_after_seq(view, after_seq)
    return await stream_after(conn, job_id, after_seq, limit), view


def check_after_seq(view: dict[str, Any], after_seq: int, field: str = "after_seq") -> None:
    """422 ``seq_out_of_range`` for a seq the job has not reached."""
    if after_seq > view["last_seq"]:
        message = f"expected {field} at most {view['last_seq']} (the last seq), got {after_seq}"
        raise AppError(
            "seq_out_of_range", message, status=422, errors=(FieldError("query", field, message),)
        )


async def stream_after(
    conn: asyncpg.Connection,
    job_id: str,
    after_seq: int,
    limit: int,
    before_seq: int = _NO_END,
) -> list[dict[str, Any]]:
    """Up to ``limit`` events with ``after_seq`` < seq < ``before_seq``, in order."""
    rows = await conn.fetch(_EVENTS, job_id, after_seq, before_seq, limit)
    return [_event_view(row) for row in rows]


async def final_status(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    """The job's terminal status event, or None while it is not finished."""
    row = await conn.fetchrow(_LAST_STATUS, job_id)
    if row is None or row["data"]["status"] not in TERMINAL:
        return None
    return _event_view(row)


def _event_view(row: asyncpg.Record) -> dict[str, Any]:
    return stream_event(str(row["job_id"]), row["seq"], row["type"], row["data"], row["created_at"])


def _job_view(row: asyncpg.Record) -> dict[str, Any]:
    return view(state_from_row(row))
