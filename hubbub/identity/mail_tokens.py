"""Tokens sent by mail: the ``mail_tokens`` table.

A token proves control of a mailbox, for one purpose (verify an email,
reset a password). It is random (``secrets.token_urlsafe``), stored only as
a SHA-256 hash, expires, and is redeemed at most once. Redeeming answers
distinct codes for each way a token can be refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

import asyncpg

from hubbub.errors import AppError

__all__ = ["Purpose", "Redeemed", "hash_token", "issue", "new_token", "redeem", "retire_open"]


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


@dataclass(frozen=True, slots=True)
class Redeemed:
    user_id: UUID
    email: str  # the address the token was sent to


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue(
    conn: asyncpg.Connection, user_id: UUID, email: str, purpose: Purpose, lifetime: timedelta
) -> str:
    """A new token for ``user_id``, sent to ``email``, valid for ``lifetime``."""
    token = new_token()
    await conn.execute(
        """INSERT INTO mail_tokens (token_hash, user_id, purpose, email, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5::interval)""",
        hash_token(token),
        user_id,
        purpose.value,
        email,
        lifetime,
    )
    return token


async def redeem(conn: asyncpg.Connection, token: str, purpose: Purpose) -> Redeemed:
    """Use ``token`` for ``purpose`` in ``conn``'s transaction (it locks the row).

    AppError ``mail_token_invalid`` (400: never issued, or for another
    purpose), ``mail_token_used`` (410) or ``mail_token_expired`` (410).
    """
    row = await conn.fetchrow(
        """SELECT user_id, email, used_at, expires_at <= now() AS expired FROM mail_tokens
           WHERE token_hash = $1 AND purpose = $2 FOR UPDATE""",
        hash_token(token),
        purpose.value,
    )
    if row is None:
        raise AppError("mail_token_invalid", "this link's token is not known", status=400)
    if row["used_at"] is not None:
        raise AppError("mail_token_used", "this link was already used", status=410)
    if row["expired"]:
        raise AppError("mail_token_expired", "this link has expired; ask for a new one", status=410)
    await conn.execute(
        "UPDATE mail_tokens SET used_at = now() WHERE token_hash = $1", hash_token(token)
    )
    return Redeemed(row["user_id"], row["email"])


async def retire_open(conn: asyncpg.Connection, user_id: UUID, purpose: Purpose) -> None:
    """Mark every unused ``purpose`` token of ``user_id`` used: older links die."""
    await conn.execute(
        """UPDATE mail_tokens SET used_at = now()
           WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL""",
        user_id,
        purpose.value,
    )
