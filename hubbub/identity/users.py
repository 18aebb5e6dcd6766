"""Accounts: the ``users`` table. Emails are unique whatever their case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.ids import new_id

__all__ = [
    "User",
    "create_user",
    "email_taken",
    "find_for_login",
    "get_user",
    "mark_email_verified",
]

_COLUMNS = "id, email, name, email_verified, created_at"


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    name: str
    email_verified: bool
    created_at: datetime


def email_taken() -> AppError:
    """The answer to a signup whose email has an account (409 ``email_taken``)."""
    return AppError("email_taken", "an account with this email already exists", status=409)


async def create_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    name: str,
    password_hash: str,
    user_id: UUID | None = None,
) -> User | None:
    """The new account (with ``user_id`` if given, else a fresh id), or None
    when the email is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)
            ON CONFLICT ((lower(email))) DO NOTHING RETURNING {_COLUMNS}""",
        user_id or new_id(),
        email,
        name,
        password_hash,
    )
    return None if row is None else User(**row)


async def find_for_login(conn: asyncpg.Connection, email: str) -> tuple[User, str] | None:
    """The account of ``email`` (any case) and its password hash, or None."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)", email
    )
    if row is None:
        return None
    fields = dict(row)
    password_hash = fields.pop("password_hash")
    return User(**fields), password_hash


async def get_user(conn: asyncpg.Connection, user_id: UUID) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else User(**row)


async def mark_email_verified(conn: asyncpg.Connection, user_id: UUID, email: str) -> bool:
    """Verify ``user_id``'s email if it still is ``email`` (any case): a mailed
    token or an accepted invite sent to it proves it. False if it changed."""
    updated = await conn.fetchval(
        """UPDATE users SET email_verified = true
           WHERE id = $1 AND lower(email) = lower($2) RETURNING id""",
        user_id,
        email,
    )
    return updated is not None
