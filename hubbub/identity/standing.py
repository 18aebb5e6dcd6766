"""Account standing: whether an account may sign in at all.

Staff can ban an account (for good, e.g. abuse) or lock it (a hold, e.g. a
suspected takeover); both end its sessions at once (``staff.py``). A barred
account's correct password still gets no tokens: login, refresh and the
2FA step answer 403 ``account_banned`` or ``account_locked_by_staff``. The
check comes after the password, so it tells nothing to someone without it.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.storage.database import Database

__all__ = ["barred_error", "refuse_if_barred"]


def barred_error(*, banned: bool, locked: bool) -> AppError | None:
    """The 403 of an account that is banned or locked by staff, else None."""
    if banned:
        return AppError("account_banned", "this account is banned", status=403)
    if locked:
        return AppError(
            "account_locked_by_staff",
            "this account is locked by staff; contact support",
            status=403,
        )
    return None


async def refuse_if_barred(conn: asyncpg.Connection | Database, user_id: UUID) -> None:
    """Raise the account's 403 if it is banned or locked by staff."""
    executor = conn.pool if isinstance(conn, Database) else conn
    row = await executor.fetchrow(
        "SELECT banned_at, staff_locked_at FROM users WHERE id = $1", user_id
    )
    if row is None:
        return
    banned, locked = row["banned_at"] is not None, row["staff_locked_at"] is not None
    error = barred_error(banned=banned, locked=locked)
    if error is not None:
        raise error
