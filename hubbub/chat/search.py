"""Finding conversations: full-text search over titles and message bodies, and
the directory of a tenant's public channels.

Both read Postgres straight, in the caller's tenant scope (row-level
security). Search sees only conversations the caller is a member of and
neither deleted conversations nor deleted messages; it uses the ``simple``
text-search configuration (no stemming, no stop words: tenants write in
many languages) with ``websearch_to_tsquery`` syntax (``"a phrase"``, ``or``,
``-word``), ranks by ``ts_rank`` with a title match counting double, and
pages by offset (a ranked list has no stable key to page by).
"""

from __future__ import annotations

import base64
from typing import Any

import asyncpg

from hubbub.chat.reads import message_row_view, with_reactions
from hubbub.errors import AppError, FieldError
from hubbub.http.cursors import decode_cursor, encode_cursor

__all__ = ["public_channels", "search"]

_SEARCH = """WITH q AS (SELECT websearch_to_tsquery('simple', $2) AS query),
hits AS (
  SELECT c.id AS conversation_id, NULL::uuid AS message_id, NULL::bigint AS seq,
    2 * ts_rank(c.search, q.query) AS rank
  FROM q, conversations c
  JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = $1
  WHERE c.deleted_at IS NULL AND c.search @@ q.query
  UNION ALL
  SELECT x.conversation_id, x.id, x.seq, ts_rank(x.search, q.query)
  FROM q, conversation_messages x
  JOIN conversation_members m ON m.conversation_id = x.conversation_id AND m.user_id = $1
  JOIN conversations c ON c.id = x.conversation_id
  WHERE c.deleted_at IS NULL AND x.deleted_at IS NULL AND x.search @@ q.query
)
SELECT h.rank, c.id AS c_id, c.kind AS c_kind, c.title AS c_title, x.id, x.conversation_id,
  x.seq, x.author_id, x.body, x.client_msg_id, x.reply_to, x.created_at, x.edited_at,
  x.deleted_at
FROM hits h JOIN conversations c ON c.id = h.conversation_id
LEFT JOIN conversation_messages x ON x.id = h.message_id
ORDER BY h.rank DESC, h.conversation_id, h.seq NULLS FIRST
OFFSET $3 LIMIT $4"""

_PUBLIC = """SELECT c.id, c.title, c.last_seq, c.created_at, c.last_activity_at,
  (SELECT count(*) FROM conversation_members x WHERE x.conversation_id = c.id) AS member_count,
  EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = c.id AND m.user_id = $1)
    AS joined
FROM conversations c
WHERE c.kind = 'channel' AND c.visibility = 'public' AND c.deleted_at IS NULL
  AND ($2::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($2, $3::uuid))
ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $4"""


async def search(
    conn: asyncpg.Connection, user_id: str, q: str, cursor: str | None, limit: int
) -> tuple[list[dict], str | None]:
    """A page of hits, best first: ``{conversation_id, kind, title, message, rank}``
    (``message`` null for a title hit), and the next cursor."""
    offset = _offset(cursor) if cursor else 0
    rows = await conn.fetch(_SEARCH, user_id, q, offset, limit + 1)
    page = rows[:limit]
    messages = [message_row_view(dict(r)) for r in page if r["id"] is not None]
    await with_reactions(conn, messages)
    by_id = {m["id"]: m for m in messages}
    items = [
        {
            "conversation_id": str(r["c_id"]),
            "kind": r["c_kind"],
            "title": r["c_title"],
            "message": None if r["id"] is None else by_id[str(r["id"])],
            "rank": float(r["rank"]),
        }
        for r in page
    ]
    more = len(rows) > limit
    return items, _encode_offset(offset + limit) if more else None


async def public_channels(
    conn: asyncpg.Connection, user_id: str, cursor: str | None, limit: int
) -> tuple[list[dict], str | None]:
    """A page of the tenant's public channels, latest activity first, each saying
    whether ``user_id`` has joined it."""
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(_PUBLIC, user_id, at, after_id, limit + 1)
    page = rows[:limit]
    items = [_channel_view(r) for r in page]
    if len(rows) > limit:
        return items, encode_cursor(page[-1]["last_activity_at"], str(page[-1]["id"]))
    return items, None


def _channel_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "member_count": row["member_count"],
        "joined": row["joined"],
        "last_seq": row["last_seq"],
        "created_at": row["created_at"].isoformat(),
        "last_activity_at": row["last_activity_at"].isoformat(),
    }


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str) -> int:
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if kind != "offset" or int(value) < 0:
            raise ValueError(cursor)
        return int(value)
    except ValueError:
        raise AppError(
            "validation_failed",
            "expected a cursor from a previous page's next_cursor",
            status=422,
            errors=(FieldError("query", "cursor", "not a cursor"),),
        ) from None
