"""Login sessions and their refresh tokens: the ``sessions`` and
``refresh_tokens`` tables.

A session is one refresh-token family. Refreshing rotates: the presented
token is marked used and a new one issued. A used token presented again
means it leaked (or a client misbehaves): the whole session is revoked,
so the thief's and the owner's tokens all die. Tokens are random
(``secrets.token_urlsafe``) and stored only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.storage.database import Database

__all__ = [
    "Refreshed",
    "Session",
    "create_session",
    "is_live",
    "list_live_sessions",
    "refresh_token_owner",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "rotate_refresh_token",
]


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID
    device: str
    ip: str | None
    created_at: datetime
    last_used_at: datetime


@dataclass(frozen=True, slots=True)
class Refreshed:
    user_id: UUID
    session_id: UUID
    refresh_token: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _new_token(conn: asyncpg.Connection, session_id: UUID) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        _hash(token),
        session_id,
    )
    return token


async def create_session(
    conn: asyncpg.Connection, user_id: UUID, *, device: str, ip: str | None, lifetime: timedelta
) -> tuple[UUID, str]:
    """A new session of ``user_id``: ``(session id, its first refresh token)``."""
    session_id = new_id()
    await conn.execute(
        """INSERT INTO sessions (id, user_id, device, ip, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5::interval)""",
        session_id,
        user_id,
        device,
        ip,
        lifetime,
    )
    return session_id, await _new_token(conn, session_id)


async def rotate_refresh_token(db: Database, token: str, lifetime: timedelta) -> Refreshed:
    """Trade ``token`` for a new one in the same session, extending it by ``lifetime``.

    AppError 401: ``invalid_refresh_token`` (unknown), ``session_revoked``,
    ``refresh_token_reused`` (already rotated: the session is now revoked)
    or ``refresh_token_expired``.
    """
    async with db.pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                """SELECT t.session_id, t.used_at, s.user_id, s.revoked_at,
                          s.expires_at <= now() AS expired
                   FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                   WHERE t.token_hash = $1 FOR UPDATE OF t, s""",
                _hash(token),
            )
            if row is None:
                raise _refused("invalid_refresh_token", "the refresh token is not known")
            if row["revoked_at"] is not None:
                raise _refused("session_revoked", "the session was revoked; log in again")
            if row["used_at"] is None and not row["expired"]:
                return await _rotate(conn, row["user_id"], row["session_id"], token, lifetime)
            if row["used_at"] is not None:
                await _revoke(conn, row["session_id"], "refresh_token_reused")
        # Committed: a reused token's session stays revoked.
        if row["used_at"] is not None:
            raise _refused(
                "refresh_token_reused",
                "this refresh token was already used; the session is revoked, log in again",
            )
        raise _refused("refresh_token_expired", "the refresh token has expired; log in again")


async def _rotate(
    conn: asyncpg.Connection, user_id: UUID, session_id: UUID, token: str, lifetime: timedelta
) -> Refreshed:
    await conn.execute(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", _hash(token)
    )
    await conn.execute(
        """UPDATE sessions SET last_used_at = now(), expires_at = now() + $2::interval
           WHERE id = $1""",
        session_id,
        lifetime,
    )
    return Refreshed(user_id, session_id, await _new_token(conn, session_id))


async def _revoke(conn: asyncpg.Connection, session_id: UUID, reason: str) -> None:
    await conn.execute(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = $2
           WHERE id = $1 AND revoked_at IS NULL""",
        session_id,
        reason,
    )


def _refused(code: str, message: str) -> AppError:
    return AppError(code, message, status=401)


async def refresh_token_owner(db: Database, token: str) -> tuple[UUID, UUID] | None:
    """``(user id, session id)`` of a refresh token ever issued, used or not."""
    row = await db.pool.fetchrow(
        """SELECT s.user_id, s.id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
           WHERE t.token_hash = $1""",
        _hash(token),
    )
    return None if row is None else (row["user_id"], row["id"])


async def is_live(db: Database, session_id: UUID, user_id: UUID) -> bool:
    """True while the session exists, is ``user_id``'s and is not revoked."""
    found = await db.pool.fetchval(
        "SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        session_id,
        user_id,
    )
    return found is not None


async def revoke_session(db: Database, session_id: UUID, user_id: UUID, reason: str) -> bool:
    """Revoke ``user_id``'s live session ``session_id``; False if there is none."""
    revoked = await db.pool.fetchval(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = $3
           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id""",
        session_id,
        user_id,
        reason,
    )
    return revoked is not None


async def revoke_all_sessions(db: Database, user_id: UUID, reason: str) -> int:
    """Revoke every live session of ``user_id``; how many there were."""
    result = await db.pool.execute(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL""",
        user_id,
        reason,
    )
    return int(result.split()[-1])


async def revoke_other_sessions(db: Database, user_id: UUID, keep: UUID, reason: str) -> int:
    """Revoke every live session of ``user_id`` but ``keep``; how many there were."""
    result = await db.pool.execute(
        """UPDATE sessions SET revoked_at = now(), revoked_reason = $3
           WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL""",
        user_id,
        keep,
        reason,
    )
    return int(result.split()[-1])


async def list_live_sessions(db: Database, user_id: UUID) -> list[Session]:
    """``user_id``'s unrevoked, unexpired sessions, most recently used first."""
    rows = await db.pool.fetch(
        """SELECT id, device, ip, created_at, last_used_at FROM sessions
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
           ORDER BY last_used_at DESC, id DESC""",
        user_id,
    )
    return [Session(**row) for row in rows]
