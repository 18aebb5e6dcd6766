"""The ``outbox`` table: mails waiting to be sent, sent, or given up.

Enqueue inside the transaction of the change a mail reports, so a mail
exists exactly when its change committed. Delivery claims due rows with
``FOR UPDATE SKIP LOCKED`` and pushes their ``next_attempt_at`` one lease
ahead, so gateways never claim the same row at once and a row whose
gateway died mid-send becomes due again (delivery is at-least-once; the
``Message-ID`` is stable across attempts so receivers can tell).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

from hubbub.ids import new_id
from hubbub.storage.database import Database

__all__ = ["Mail", "QueuedMail", "claim_due", "enqueue", "mark_failed", "mark_sent", "retry_delay"]

_FIRST_RETRY = timedelta(seconds=30)
_LONGEST_RETRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Mail:
    """A plain-text mail; ``kind`` names what it is for (``verify_email``)."""

    kind: str
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: UUID
    mail: Mail
    attempts: int  # including the attempt it was claimed for


async def enqueue(conn: asyncpg.Connection, mail: Mail) -> UUID:
    """Queue ``mail`` in ``conn``'s transaction; its outbox id."""
    mail_id = new_id()
    await conn.execute(
        """INSERT INTO outbox (id, kind, recipient, subject, body)
           VALUES ($1, $2, $3, $4, $5)""",
        mail_id,
        mail.kind,
        mail.recipient,
        mail.subject,
        mail.body,
    )
    return mail_id


async def claim_due(db: Database, limit: int, lease: timedelta) -> list[QueuedMail]:
    """Up to ``limit`` due mails, oldest due first, leased for ``lease``."""
    rows = await db.pool.fetch(
        """UPDATE outbox SET attempts = attempts + 1, next_attempt_at = now() + $2::interval
           WHERE id IN (
             SELECT id FROM outbox
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, recipient, subject, body, attempts""",
        limit,
        lease,
    )
    rows = sorted(rows, key=lambda row: row["id"])  # UUIDv7: creation order
    return [
        QueuedMail(
            row["id"],
            Mail(row["kind"], row["recipient"], row["subject"], row["body"]),
            row["attempts"],
        )
        for row in rows
    ]


async def mark_sent(db: Database, mail_id: UUID) -> None:
    """Delivered: erase the body (it carries a live token) and record when."""
    await db.pool.execute(
        "UPDATE outbox SET sent_at = now(), body = '', last_error = NULL WHERE id = $1", mail_id
    )


async def mark_failed(db: Database, queued: QueuedMail, error: str, max_attempts: int) -> bool:
    """Record a failed attempt: retry later, or give up after ``max_attempts``.

    True when the mail was given up.
    """
    give_up = queued.attempts >= max_attempts
    await db.pool.execute(
        """UPDATE outbox SET last_error = $2,
             failed_at = CASE WHEN $3 THEN now() END,
             next_attempt_at = now() + $4::interval
           WHERE id = $1""",
        queued.id,
        error[:1000],
        give_up,
        retry_delay(queued.attempts),
    )
    return give_up


def retry_delay(attempts: int) -> timedelta:
    """Backoff after ``attempts`` failed attempts: 30 s, doubling, at most an hour."""
    return min(_FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 8), _LONGEST_RETRY)
