"""Retention of identity rows that are over: every gateway, hourly, deletes
the sessions, refresh tokens, mail tokens, 2FA login challenges and sent
mails that ended more than ``HUBBUB_AUTH_RETENTION_DAYS`` ago.

The application role may not delete these rows (a live session's used
tokens are what refresh-token reuse detection reads), so the deleting is
done by migration 0017's ``hubbub_prune_auth``, which runs as the migration
owner and touches nothing younger than the retention. Each call deletes at
most a batch of rows per table in its own transaction, so a backlog drains
in short transactions; a transaction-scoped advisory lock keeps one gateway
at it at a time.
"""

from __future__ import annotations

from datetime import timedelta

from hubbub.services import Services, every
from hubbub.storage.database import Database

__all__ = ["BATCH", "PRUNE_SECONDS", "auth_retention", "prune_auth"]

#: How often each gateway prunes.
PRUNE_SECONDS = 3600.0
#: Most rows of one table deleted per transaction.
BATCH = 5000
#: ``pg_try_advisory_xact_lock`` key of the pruning (any constant unique to it).
_LOCK = 0x6875_6262_7265_746E  # "hubbretn"


async def prune_auth(db: Database, retention: timedelta, batch: int = BATCH) -> int | None:
    """Delete what ended before ``retention`` ago, a batch at a time; how many
    batches it took (None: another gateway is pruning)."""
    batches = 0
    while True:
        async with db.tenant(None) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            most = await conn.fetchval("SELECT hubbub_prune_auth($1, $2)", retention, batch)
        batches += 1
        if most < batch:
            return batches


async def _prune(services: Services) -> int | None:
    return await prune_auth(services.db, timedelta(days=services.settings.auth_retention_days))


#: A start hook: this gateway's hourly pruning (first round an hour in).
auth_retention = every("identity retention", PRUNE_SECONDS, _prune)
