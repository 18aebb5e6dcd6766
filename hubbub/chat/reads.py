"""What the gateway reads of conversations straight from Postgres.

Reads need no entity: they see committed state only (the entity replies
after commit), in the caller's tenant scope (row-level security), and each
one is joined to the caller's membership row, so a conversation you are not
in reads as absent — the HTTP layer answers 404. Unread counts are exact:
the messages of others after your read mark that are not deleted. A
deleted conversation reads as absent to everyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from hubbub.chat.messages import message_view, reactions_view
from hubbub.chat.rows import message_from_row
from hubbub.errors import AppError, FieldError
from hubbub.http.cursors import decode_cursor, encode_cursor

__all__ = [
    "Filters",
    "conversation",
    "conversations",
    "events_after",
    "message_row_view",
    "messages",
    "stream_after",
    "unread_counts",
    "with_reactions",
]

_VIEW = """SELECT c.id, c.tenant_id, c.kind, c.visibility, c.title, c.subject_type, c.subject_id,
  c.last_seq, c.created_at, c.updated_at, c.last_activity_at, m.role, m.last_read_seq,
  c.status, c.snooze_until, c.assignee_id, c.labels, m.muted, m.starred,
  (SELECT count(*) FROM conversation_messages x WHERE x.conversation_id = c.id
     AND x.seq > m.last_read_seq AND x.author_id <> m.user_id AND x.deleted_at IS NULL
  ) AS unread_count,
  l.id AS l_id, l.seq AS l_seq, l.author_id AS l_author_id, l.body AS l_body,
  l.client_msg_id AS l_client_msg_id, l.reply_to AS l_reply_to, l.created_at AS l_created_at,
  l.edited_at AS l_edited_at, l.deleted_at AS l_deleted_at
FROM conversation_members m
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN conversation_messages l ON l.conversation_id = c.id AND l.seq = c.last_message_seq
WHERE m.user_id = $1 AND c.deleted_at IS NULL"""
_ONE = _VIEW + " AND c.id = $2"
_MINE = (
    _VIEW
    + """ AND ($2::text IS NULL OR c.kind = $2)
  AND ($3::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($3, $4::uuid))
  AND ($6::text IS NULL OR c.status = $6) AND ($7::text IS NULL OR $7 = ANY(c.labels))
  AND ($8::uuid IS NULL OR c.assignee_id = $8)
ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $5"""
)
_HEAD = """SELECT c.last_seq FROM conversations c JOIN conversation_members m
  ON m.conversation_id = c.id AND m.user_id = $2 WHERE c.id = $1 AND c.deleted_at IS NULL"""
_MESSAGE_COLUMNS = """id, conversation_id, seq, author_id, body, client_msg_id, reply_to,
  created_at, edited_at, deleted_at"""
_BEFORE = f"""SELECT {_MESSAGE_COLUMNS} FROM conversation_messages
  WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"""
_FROM = f"""SELECT {_MESSAGE_COLUMNS} FROM conversation_messages
  WHERE conversation_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3"""
_EVENTS = """SELECT seq, event, data, created_at FROM conversation_events
  WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"""
_REACTIONS = """SELECT message_id, emoji, user_id FROM conversation_reactions
  WHERE message_id = ANY($1::uuid[]) ORDER BY created_at, user_id"""
_UNREAD = """SELECT m.conversation_id, c.last_seq, m.last_read_seq,
  (SELECT count(*) FROM conversation_messages x WHERE x.conversation_id = m.conversation_id
     AND x.seq > m.last_read_seq AND x.author_id <> m.user_id AND x.deleted_at IS NULL
  ) AS unread_count
FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
WHERE m.user_id = $1 AND c.deleted_at IS NULL ORDER BY c.last_activity_at DESC, c.id DESC"""


async def conversation(conn: asyncpg.Connection, conversation_id: str, user_id: str) -> dict:
    """The conversation as ``user_id`` sees it; 404 unless a member."""
    row = await conn.fetchrow(_ONE, user_id, conversation_id)
    if row is None:
        raise AppError.not_found("conversation")
    view = _conversation_view(row)
    await with_reactions(conn, [view["last_message"]] if view["last_message"] else [])
    return view


@dataclass(frozen=True, slots=True)
class Filters:
    """What ``GET /conversations`` narrows the list to (None: any)."""

    kind: str | None = None
    status: str | None = None
    label: str | None = None
    assignee: UUID | None = None


async def conversations(
    conn: asyncpg.Connection, user_id: str, filters: Filters, cursor: str | None, limit: int
) -> tuple[list[dict], str | None]:
    """A page of the user's conversations, latest activity first, and the next cursor."""
    at, after_id = decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(
        _MINE,
        user_id,
        filters.kind,
        at,
        after_id,
        limit + 1,
        filters.status,
        filters.label,
        filters.assignee,
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["last_activity_at"], str(last["id"]))
    views = [_conversation_view(r) for r in page]
    await with_reactions(conn, [v["last_message"] for v in views if v["last_message"]])
    return views, next_cursor


async def with_reactions(conn: asyncpg.Connection, messages: list[dict]) -> list[dict]:
    """``messages`` (views) with their ``reactions`` filled in from Postgres."""
    if not messages:
        return messages
    found: dict[str, dict[str, list[str]]] = {}
    rows = await conn.fetch(_REACTIONS, [m["id"] for m in messages])
    for row in rows:
        by_emoji = found.setdefault(str(row["message_id"]), {})
        by_emoji.setdefault(row["emoji"], []).append(str(row["user_id"]))
    for message in messages:
        message["reactions"] = reactions_view(found.get(message["id"], {}))
    return messages


async def head(conn: asyncpg.Connection, conversation_id: str, user_id: str) -> int:
    """The conversation's last seq; 404 unless ``user_id`` is a member."""
    last_seq = await conn.fetchval(_HEAD, conversation_id, user_id)
    if last_seq is None:
        raise AppError.not_found("conversation")
    return last_seq


async def messages(
    conn: asyncpg.Connection,
    conversation_id: str,
    user_id: str,
    *,
    before: int | None,
    after: int | None,
    around: int | None,
    limit: int,
) -> tuple[list[dict], str | None]:
    """A page of messages in seq order, and the seq to continue from (or None).

    ``before``: the ``limit`` messages before that seq (default: the latest),
    continue with ``before=<cursor>``; ``after``: those after it, continue with
    ``after=<cursor>``; ``around``: up to ``limit`` centred on it.
    """
    given = [
        name
        for name, v in (("before", before), ("after", after), ("around", around))
        if v is not None
    ]
    if len(given) > 1:
        raise _bad_range(given[1], f"expected one of before, after, around; got {given}")
    last_seq = await head(conn, conversation_id, user_id)
    for name in given:
        value = {"before": before, "after": after, "around": around}[name]
        top = last_seq + 1 if name == "before" else last_seq
        if value is not None and value > top:
            raise _bad_range(name, f"expected {name} at most {top} (the last seq), got {value}")
    if after is not None:
        rows = await conn.fetch(_FROM, conversation_id, after + 1, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return await _views(conn, rows), str(rows[-1]["seq"]) if more else None
    if around is not None:
        older = await conn.fetch(_BEFORE, conversation_id, around, limit // 2)
        newer = await conn.fetch(_FROM, conversation_id, around, limit - len(older))
        return await _views(conn, [*reversed(older), *newer]), None
    upper = last_seq + 1 if before is None else before
    rows = await conn.fetch(_BEFORE, conversation_id, upper, limit + 1)
    more = len(rows) > limit
    rows = list(reversed(rows[:limit]))
    return await _views(conn, rows), str(rows[0]["seq"]) if more else None


async def events_after(
    conn: asyncpg.Connection, conversation_id: str, user_id: str, after_seq: int, limit: int
) -> tuple[list[dict], int]:
    """Up to ``limit`` events after ``after_seq`` in order, and the last seq."""
    last_seq = await head(conn, conversation_id, user_id)
    if after_seq > last_seq:
        raise _bad_range(
            "after_seq", f"expected after_seq at most {last_seq} (the last seq), got {after_seq}"
        )
    return await stream_after(conn, conversation_id, after_seq, limit), last_seq


async def stream_after(
    conn: asyncpg.Connection, conversation_id: str, after_seq: int, limit: int
) -> list[dict]:
    """Up to ``limit`` stream events after ``after_seq`` in order, with no member
    check: for a gateway repairing a fan-out gap for sockets checked at their join."""
    rows = await conn.fetch(_EVENTS, conversation_id, after_seq, limit)
    return [
        {
            "seq": r["seq"],
            "event": r["event"],
            "data": r["data"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]


async def unread_counts(conn: asyncpg.Connection, user_id: str) -> list[dict]:
    """Every conversation of the user with its unread count, latest activity first."""
    return [
        {
            "conversation_id": str(r["conversation_id"]),
            "last_seq": r["last_seq"],
            "last_read_seq": r["last_read_seq"],
            "unread_count": r["unread_count"],
        }
        for r in await conn.fetch(_UNREAD, user_id)
    ]


def _conversation_view(row: asyncpg.Record) -> dict[str, Any]:
    subject = None
    if row["subject_type"] is not None:
        subject = {"type": row["subject_type"], "id": row["subject_id"]}
    last_message = None
    if row["l_id"] is not None:
        last_message = message_row_view(
            {k.removeprefix("l_"): v for k, v in dict(row).items() if k.startswith("l_")}
            | {"conversation_id": row["id"]}
        )
    return {
        "id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]),
        "kind": row["kind"],
        "visibility": row["visibility"],
        "title": row["title"],
        "subject": subject,
        "status": row["status"],
        "snooze_until": None if row["snooze_until"] is None else row["snooze_until"].isoformat(),
        "assignee_id": None if row["assignee_id"] is None else str(row["assignee_id"]),
        "labels": list(row["labels"]),
        "role": row["role"],
        "muted": row["muted"],
        "starred": row["starred"],
        "last_seq": row["last_seq"],
        "last_read_seq": row["last_read_seq"],
        "unread_count": row["unread_count"],
        "last_message": last_message,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def _views(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[dict]:
    return await with_reactions(conn, [message_row_view(dict(r)) for r in rows])


def message_row_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A message row as the wire shows it (:func:`~hubbub.chat.messages.message_view`);
    ``reactions`` empty until :func:`with_reactions`."""
    return message_view(str(row["conversation_id"]), message_from_row(row))


def _bad_range(field: str, message: str) -> AppError:
    return AppError(
        "seq_out_of_range", message, status=422, errors=(FieldError("query", field, message),)
    )
