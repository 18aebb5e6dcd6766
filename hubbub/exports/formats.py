"""How export rows are written: CSV or JSON Lines, one record per row.

Both formats carry the same records. A conversation record is ``{type:
"conversation", conversation_id, kind, visibility, title, status,
created_by, created_at, last_activity_at}``; a message record is ``{type:
"message", conversation_id, message_id, seq, author_id, body, reply_to,
created_at, edited_at, deleted_at}``. JSON Lines writes each record as one
JSON object per line (``null`` for an absent value); CSV has one header
line with the union of the fields (:data:`COLUMNS`) and leaves the fields a
record lacks, and absent values, empty. Times are RFC 3339 UTC. A CSV text
that a spreadsheet would run as a formula (it starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return: a message typed by anyone) is
written with a leading ``'``, as OWASP advises; JSON Lines keeps every text
as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

__all__ = [
    "COLUMNS",
    "MEDIA_TYPES",
    "Format",
    "conversation_record",
    "encode",
    "header",
    "message_record",
    "rfc3339",
]

Format = Literal["csv", "jsonl"]

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl; charset=utf-8",
}

COLUMNS = (
    "type",
    "conversation_id",
    "message_id",
    "seq",
    "kind",
    "visibility",
    "title",
    "status",
    "created_by",
    "author_id",
    "body",
    "reply_to",
    "created_at",
    "last_activity_at",
    "edited_at",
    "deleted_at",
)

Record = dict[str, Any]


def conversation_record(row: asyncpg.Record) -> Record:
    return {
        "type": "conversation",
        "conversation_id": str(row["id"]),
        "kind": row["kind"],
        "visibility": row["visibility"],
        "title": row["title"],
        "status": row["status"],
        "created_by": str(row["created_by"]),
        "created_at": rfc3339(row["created_at"]),
        "last_activity_at": rfc3339(row["last_activity_at"]),
    }


def message_record(row: asyncpg.Record) -> Record:
    return {
        "type": "message",
        "conversation_id": str(row["conversation_id"]),
        "message_id": str(row["id"]),
        "seq": row["seq"],
        "author_id": str(row["author_id"]),
        "body": row["body"],
        "reply_to": None if row["reply_to"] is None else str(row["reply_to"]),
        "created_at": rfc3339(row["created_at"]),
        "edited_at": rfc3339(row["edited_at"]),
        "deleted_at": rfc3339(row["deleted_at"]),
    }


def header(format: Format) -> bytes:
    """What the file starts with."""
    return _csv([dict(zip(COLUMNS, COLUMNS, strict=True))]) if format == "csv" else b""


def encode(format: Format, records: Iterable[Record]) -> bytes:
    """``records`` in ``format``, each ending with a newline."""
    if format == "csv":
        return _csv(records)
    return b"".join(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in records)


def _csv(records: Iterable[Record]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\r\n")
    writer.writerows({name: _inert(value) for name, value in r.items()} for r in records)
    return buffer.getvalue().encode()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """``value``, with a leading ``'`` if a spreadsheet would take it for a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value


def rfc3339(value: datetime | None) -> str | None:
    """``value`` as RFC 3339 with ``Z`` (UTC, as asyncpg gives times); None stays None."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")
