"""What the gateway reads of broadcasts, straight from Postgres.

Reads run in the caller's tenant scope (row-level security), so another
tenant's broadcast reads as absent and the HTTP layer answers 404.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from hubbub.errors import AppError
from hubbub.http.cursors import decode_cursor, encode_cursor

__all__ = ["broadcast", "broadcasts", "recipients"]

_WITH_COUNTS = """SELECT b.*, c.*, j.status AS job_status, j.error AS job_error
FROM broadcasts b LEFT JOIN jobs j ON j.id = b.job_id CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE r.status = 'pending') AS pending,
         count(*) FILTER (WHERE r.status = 'sent') AS sent,
         count(*) FILTER (WHERE r.status = 'failed') AS failed,
         count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled
  FROM broadcast_recipients r WHERE r.broadcast_id = b.id) c"""
_ONE = f"{_WITH_COUNTS} WHERE b.id = $1"
_PAGE = f"""{_WITH_COUNTS}
WHERE ($1::timestamptz IS NULL OR (b.created_at, b.id) < ($1, $2::uuid))
ORDER BY b.created_at DESC, b.id DESC LIMIT $3"""
_RECIPIENTS = """SELECT * FROM broadcast_recipients
WHERE broadcast_id = $1 AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR (created_at, conversation_id) > ($3, $4::uuid))
ORDER BY created_at, conversation_id LIMIT $5"""
_COUNTED = ("pending", "sent", "failed", "cancelled")


async def broadcast(conn: asyncpg.Connection, broadcast_id: str) -> dict[str, Any]:
    """The broadcast with its counts per status; 404 if not in the tenant."""
    row = await conn.fetchrow(_ONE, broadcast_id)
    if row is None:
        raise AppError.not_found("broadcast")
    return _broadcast_view(row)


async def broadcasts(
    conn: asyncpg.Connection, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's broadcasts, newest first, and the next cursor."""
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(_PAGE, at, after_id, limit + 1)
    return [_broadcast_view(r) for r in rows[:limit]], _next(rows, limit, "id")


async def recipients(
    conn: asyncpg.Connection, broadcast_id: str, status: str | None, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the broadcast's recipients (optionally of one status); 404 if
    the broadcast is not in the tenant."""
    await broadcast(conn, broadcast_id)
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(_RECIPIENTS, broadcast_id, status, at, after_id, limit + 1)
    return [_recipient_view(r) for r in rows[:limit]], _next(rows, limit, "conversation_id")


def _next(rows: list[asyncpg.Record], limit: int, key: str) -> str | None:
    """The cursor after a page, if rows beyond it were read."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last["created_at"], str(last[key]))


def _broadcast_view(row: asyncpg.Record) -> dict[str, Any]:
    counts = {name: row[name] for name in _COUNTED}
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "job_id": row["job_id"],
        "body": row["body"],
        "label": row["label"],
        "status": row["status"],
        "job_status": row["job_status"],
        "job_error": row["job_error"],
        "start_at": row["start_at"],
        "total": sum(counts.values()),
        "counts": counts,
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


def _recipient_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "conversation_id": row["conversation_id"],
        "status": row["status"],
        "error": row["error"],
        "message_id": row["message_id"],
        "message_seq": row["message_seq"],
        "updated_at": row["updated_at"],
    }
