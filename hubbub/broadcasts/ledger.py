"""The broadcast ledger: a broadcast's row and its recipients' statuses.

Written from two places. The gateway creates a broadcast (every recipient
``pending``) and cancels it (``pending`` → ``cancelled``); the job that
sends it (``broadcast.send``, one run at a time) starts it, marks
recipients ``sent`` or ``failed`` a batch at a time and completes it. The
two never overwrite each other: each write names the statuses it changes
from, so a recipient cancelled meanwhile stays cancelled — unless its
message was in fact sent, which is recorded as sent. Every function takes
a connection in the tenant's scope (``Database.tenant``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from hubbub.errors import AppError, FieldError

__all__ = [
    "Delivery",
    "Draft",
    "begin",
    "cancel",
    "create",
    "finish",
    "forget",
    "mark",
    "pending",
    "tally",
]

_INSERT = """INSERT INTO broadcasts (id, tenant_id, job_id, body, label, status, start_at,
  idempotency_key, request_hash, created_by, created_at)
  VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, now()) ON CONFLICT (id) DO NOTHING"""
_HASH = "SELECT request_hash FROM broadcasts WHERE id = $1"
_ADD_BY_ID = """INSERT INTO broadcast_recipients (tenant_id, broadcast_id, conversation_id,
  status, created_at, updated_at)
  SELECT $1, $2, id, 'pending', now(), now() FROM unnest($3::uuid[]) AS id"""
# A label names the support conversations the sender is in: those it may send to.
_ADD_BY_LABEL = """INSERT INTO broadcast_recipients (tenant_id, broadcast_id, conversation_id,
  status, created_at, updated_at)
  SELECT $1, $2, c.id, 'pending', now(), now() FROM conversations c
  JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = $4
  WHERE c.kind = 'support' AND c.deleted_at IS NULL AND $3 = ANY(c.labels)"""
_FORGET = (
    "DELETE FROM broadcast_recipients WHERE broadcast_id = $1",
    "DELETE FROM broadcasts WHERE id = $1",
)
_BEGIN = """UPDATE broadcasts SET status = 'sending', started_at = now()
  WHERE id = $1 AND status = 'queued'"""
_MESSAGE = "SELECT job_id, body, created_by, status FROM broadcasts WHERE id = $1"
_STATUS = "SELECT status FROM broadcasts WHERE id = $1"
_PENDING = """SELECT conversation_id FROM broadcast_recipients
  WHERE broadcast_id = $1 AND status = 'pending' ORDER BY conversation_id LIMIT $2"""
_MARK = """UPDATE broadcast_recipients r SET status = d.status, message_id = d.message_id,
  message_seq = d.seq, updated_at = now(),
  error = CASE WHEN d.code IS NULL THEN NULL
          ELSE jsonb_build_object('code', d.code, 'message', d.message) END
  FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[])
    AS d(conversation_id, status, message_id, seq, code, message)
  WHERE r.broadcast_id = $1 AND r.conversation_id = d.conversation_id
    AND (r.status = 'pending' OR (r.status = 'cancelled' AND d.status = 'sent'))"""
_TALLY = """SELECT status, count(*) AS n FROM broadcast_recipients
  WHERE broadcast_id = $1 GROUP BY status"""
_FINISH = """UPDATE broadcasts SET status = 'completed', finished_at = now()
  WHERE id = $1 AND status = 'sending' RETURNING status"""
_CANCEL = """UPDATE broadcasts SET status = 'cancelled', finished_at = now()
  WHERE id = $1 AND status IN ('queued', 'sending')"""
_CANCEL_PENDING = """UPDATE broadcast_recipients SET status = 'cancelled', updated_at = now()
  WHERE broadcast_id = $1 AND status = 'pending'"""


@dataclass(frozen=True, slots=True)
class Draft:
    """A broadcast to create: to ``recipient_ids``, or to the conversations with ``label``."""

    id: UUID
    tenant_id: str
    job_id: UUID
    body: str
    created_by: str
    recipient_ids: list[UUID] | None
    label: str | None
    start_at: datetime | None
    idempotency_key: str | None
    request_hash: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """What sending to one recipient came to: its message, or an error."""

    conversation_id: str
    message_id: str | None = None
    seq: int | None = None
    error: tuple[str, str] | None = None  # (code, message)

    @property
    def status(self) -> str:
        return "failed" if self.error else "sent"


async def create(conn: asyncpg.Connection, new: Draft) -> bool:
    """Insert the broadcast and its pending recipients; False if its id (fixed
    by an idempotency key) has a broadcast of the same request already.

    422 ``idempotency_key_reused`` if that broadcast came from another request,
    ``no_recipients`` naming ``label`` when the label matches no conversation
    (nothing is written then).
    """
    inserted = await conn.execute(
        _INSERT,
        new.id,
        new.tenant_id,
        new.job_id,
        new.body,
        new.label,
        new.start_at,
        new.idempotency_key,
        new.request_hash,
        new.created_by,
    )
    if inserted.endswith(" 0"):
        _check_same_request(await conn.fetchval(_HASH, new.id), new.request_hash)
        return False
    if new.recipient_ids is not None:
        ids = list(dict.fromkeys(new.recipient_ids))
        await conn.execute(_ADD_BY_ID, new.tenant_id, new.id, ids)
        return True
    added = await conn.execute(_ADD_BY_LABEL, new.tenant_id, new.id, new.label, new.created_by)
    if added.endswith(" 0"):
        raise AppError(
            "no_recipients",
            f"expected support conversations of yours with label {new.label!r}, found none",
            status=422,
            errors=(FieldError("body", "label", "no conversation of yours has this label"),),
        )
    return True


def _check_same_request(stored: bytes, given: bytes) -> None:
    if bytes(stored) != given:
        raise AppError(
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request body; "
            "expected the same body, or a new key for a new broadcast",
            status=422,
        )


async def forget(conn: asyncpg.Connection, broadcast_id: UUID | str) -> None:
    """Remove a broadcast whose job could not be submitted."""
    for statement in _FORGET:
        await conn.execute(statement, broadcast_id)


async def begin(conn: asyncpg.Connection, broadcast_id: str) -> asyncpg.Record:
    """Mark a queued broadcast ``sending``; its ``job_id``, ``body``, ``created_by``
    and ``status``."""
    await conn.execute(_BEGIN, broadcast_id)
    row = await conn.fetchrow(_MESSAGE, broadcast_id)
    if row is None:
        raise AppError.not_found("broadcast")
    return row


async def pending(conn: asyncpg.Connection, broadcast_id: str, limit: int) -> list[str]:
    """Up to ``limit`` recipients still to send to."""
    rows = await conn.fetch(_PENDING, broadcast_id, limit)
    return [str(row["conversation_id"]) for row in rows]


async def mark(conn: asyncpg.Connection, broadcast_id: str, deliveries: list[Delivery]) -> None:
    """Record a batch of deliveries in one statement."""
    await conn.execute(
        _MARK,
        broadcast_id,
        [d.conversation_id for d in deliveries],
        [d.status for d in deliveries],
        [d.message_id for d in deliveries],
        [d.seq for d in deliveries],
        [d.error[0] if d.error else None for d in deliveries],
        [d.error[1] if d.error else None for d in deliveries],
    )


async def tally(conn: asyncpg.Connection, broadcast_id: str) -> dict[str, int]:
    """Recipients per status (every status, zero included)."""
    counts = dict.fromkeys(("pending", "sent", "failed", "cancelled"), 0)
    for row in await conn.fetch(_TALLY, broadcast_id):
        counts[row["status"]] = row["n"]
    return counts


async def finish(conn: asyncpg.Connection, broadcast_id: str) -> str:
    """Complete a broadcast that is sending; its status after (``cancelled`` stays)."""
    status = await conn.fetchval(_FINISH, broadcast_id)
    return status or await conn.fetchval(_STATUS, broadcast_id)


async def cancel(conn: asyncpg.Connection, broadcast_id: UUID | str) -> bool:
    """Cancel a queued or sending broadcast and its pending recipients;
    False if it had finished already."""
    if (await conn.execute(_CANCEL, broadcast_id)).endswith(" 0"):
        return False
    await conn.execute(_CANCEL_PENDING, broadcast_id)
    return True
