"""Idempotency receipts: the first reply to each keyed command, in Postgres.

A command that carries an idempotency key has its reply written in the same
group commit as its change (``entity_commands``), so a retry after a shard
restart returns that reply and changes nothing. The shard host keeps the
receipts of its active entities in memory, loads them with an activation,
and shard 0 of each kind prunes those older than the idempotency window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from hubbub.actors.command import Command
from hubbub.actors.entity import Write

__all__ = ["PRUNE_EVERY_SECONDS", "load_receipts", "prune_receipts", "receipt_write"]

#: How often shard 0 of a kind deletes expired receipts.
PRUNE_EVERY_SECONDS = 600.0

_RECORD = """INSERT INTO entity_commands (kind, entity_key, idempotency_key, tenant_id, reply)
VALUES ($1, $2, $3, $4, $5)"""
_PRUNE = """DELETE FROM entity_commands WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM entity_commands WHERE kind = $1 AND created_at < now() - $2::interval
  LIMIT 10000))"""
_LOAD = """SELECT entity_key, idempotency_key, reply FROM entity_commands
WHERE kind = $1 AND entity_key = ANY($2::text[]) AND created_at > now() - $3::interval"""


def receipt_write(kind: str, command: Command, reply: Any) -> Write:
    """The write that records ``reply`` as the answer to ``command``'s key."""
    return Write(_RECORD, (kind, command.key, command.idempotency_key, command.tenant_id, reply))


async def load_receipts(
    conn: asyncpg.Connection, kind: str, keys: list[str], window: timedelta
) -> list[asyncpg.Record]:
    """``(entity_key, idempotency_key, reply)`` of the receipts of ``keys`` still in ``window``."""
    return await conn.fetch(_LOAD, kind, keys, window)


async def prune_receipts(conn: asyncpg.Connection, kind: str, window: timedelta) -> None:
    """Delete up to 10,000 of ``kind``'s receipts older than ``window``."""
    await conn.execute(_PRUNE, kind, window)
