"""What an export contains, read from Postgres in keyset pages.

An export is the tenant's conversations (not deleted ones), then their
messages (deleted ones as tombstones: empty body, ``deleted_at`` set),
optionally limited to some conversations and to what happened since a time:
conversations active since then and messages created since then. Every read
runs in one read-only, repeatable-read transaction in the tenant's
row-level-security scope, so the count and the pages see one snapshot and
only the tenant's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hubbub.storage.database import Database, set_tenant

__all__ = ["PAGE", "Scope", "conversation_pages", "count_rows", "message_pages", "snapshot"]

#: Rows per page: one query and one file write each.
PAGE = 500

_NIL = UUID(int=0)

# $1 conversation ids (NULL: all), $2 since (NULL: from the start).
_CONVERSATIONS = """c.deleted_at IS NULL
  AND ($1::uuid[] IS NULL OR c.id = ANY($1::uuid[]))
  AND ($2::timestamptz IS NULL OR c.last_activity_at >= $2)"""
_MESSAGES = f"""{_CONVERSATIONS}
  AND ($2::timestamptz IS NULL OR m.created_at >= $2)"""
_FROM_MESSAGES = "conversation_messages m JOIN conversations c ON c.id = m.conversation_id"

_COUNT = f"""SELECT (SELECT count(*) FROM conversations c WHERE {_CONVERSATIONS})
  + (SELECT count(*) FROM {_FROM_MESSAGES} WHERE {_MESSAGES})"""
_CONVERSATION_PAGE = f"""SELECT c.id, c.kind, c.visibility, c.title, c.status, c.created_by,
  c.created_at, c.last_activity_at
FROM conversations c WHERE {_CONVERSATIONS} AND c.id > $3 ORDER BY c.id LIMIT $4"""
_MESSAGE_PAGE = f"""SELECT m.conversation_id, m.id, m.seq, m.author_id, m.body, m.reply_to,
  m.created_at, m.edited_at, m.deleted_at
FROM {_FROM_MESSAGES} WHERE {_MESSAGES} AND (m.conversation_id, m.seq) > ($3, $4)
ORDER BY m.conversation_id, m.seq LIMIT $5"""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows: some conversations (None: all) and what happened since a time."""

    conversation_ids: Sequence[UUID] | None = None
    since: datetime | None = None

    @property
    def args(self) -> tuple[Any, ...]:
        ids = None if self.conversation_ids is None else list(self.conversation_ids)
        return ids, self.since


@asynccontextmanager
async def snapshot(db: Database, tenant_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A read-only transaction over one snapshot of ``tenant_id``'s rows."""
    async with (
        db.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        await set_tenant(conn, tenant_id)
        yield conn


async def count_rows(conn: asyncpg.Connection, scope: Scope) -> int:
    """Conversations plus messages the export will write."""
    return await conn.fetchval(_COUNT, *scope.args)


async def conversation_pages(
    conn: asyncpg.Connection, scope: Scope
) -> AsyncIterator[list[asyncpg.Record]]:
    """The conversations in id order, a page at a time."""
    after = _NIL
    while rows := await conn.fetch(_CONVERSATION_PAGE, *scope.args, after, PAGE):
        yield rows
        after = rows[-1]["id"]


async def message_pages(
    conn: asyncpg.Connection, scope: Scope
) -> AsyncIterator[list[asyncpg.Record]]:
    """The messages in (conversation, seq) order, a page at a time."""
    after: tuple[UUID, int] = (_NIL, 0)
    while rows := await conn.fetch(_MESSAGE_PAGE, *scope.args, *after, PAGE):
        yield rows
        after = (rows[-1]["conversation_id"], rows[-1]["seq"])
