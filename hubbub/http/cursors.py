"""Keyset pagination cursors: opaque ``next_cursor`` strings of ``(time, id)``.

A list ordered by ``(created_at, id)`` or ``(last_activity_at, id)`` resumes
after the last row of the previous page; the cursor carries that row's key.
"""

from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

from hubbub.errors import AppError, FieldError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(time, id)`` of a cursor; 422 naming ``cursor`` if it is not one."""
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), str(UUID(row_id))
    except ValueError:
        raise AppError(
            "validation_failed",
            "expected a cursor from a previous page's next_cursor",
            status=422,
            errors=(FieldError("query", "cursor", "not a cursor"),),
        ) from None
