"""The rows of async signups (migrations 0015, 0016): what a provisioning job
needs beyond its input, and the links that open its stream.

Both tables hold platform rows (no tenant), read and written in the
no-tenant scope. A stream token is 256 random bits, shown once; only its
SHA-256 is kept, with an expiry. Expired links go hourly, and signups once
``HUBBUB_AUTH_RETENTION_DAYS`` old (:func:`prune_signups`). The account's
bearer tokens are stored nowhere: the first time a link delivers the job's
success it is *claimed*, and only then is the account's session opened and
its tokens made, for that one client (:func:`claim_stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.identity.mail_tokens import hash_token, new_token
from hubbub.storage.database import Database

__all__ = [
    "Signup",
    "claim_stream",
    "file_signup",
    "find_by_key",
    "forget_password",
    "get_signup",
    "open_stream",
    "prune_signups",
    "stream_job",
]

_COLUMNS = "job_id, user_id, new_tenant_id, email, password_hash, device, ip"
_INSERT = f"""INSERT INTO account_signups ({_COLUMNS}, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"""
_BY_KEY = f"""SELECT {_COLUMNS} FROM account_signups
WHERE lower(email) = lower($1) AND idempotency_key = $2"""
_BY_JOB = f"SELECT {_COLUMNS} FROM account_signups WHERE job_id = $1"
_FORGET = "UPDATE account_signups SET password_hash = NULL WHERE job_id = $1"
_OPEN = """INSERT INTO signup_streams (token_hash, job_id, expires_at)
VALUES ($1, $2, now() + $3::interval) RETURNING expires_at"""
_RESOLVE = "SELECT job_id FROM signup_streams WHERE token_hash = $1 AND expires_at > now()"
# The signup's device and address, for the session the claim opens.
_CLAIM = f"""UPDATE signup_streams l SET claimed_at = now() FROM account_signups s
WHERE l.token_hash = $1 AND l.claimed_at IS NULL AND s.job_id = l.job_id
RETURNING {", ".join(f"s.{column}" for column in _COLUMNS.split(", "))}"""
_PRUNE_LINKS = "DELETE FROM signup_streams WHERE expires_at < now()"
_PRUNE_SIGNUPS = """DELETE FROM account_signups s WHERE created_at < now() - $1::interval
AND NOT EXISTS (SELECT 1 FROM signup_streams l WHERE l.job_id = s.job_id)"""


@dataclass(frozen=True, slots=True)
class Signup:
    """One async signup; ``password_hash`` is None once the account exists."""

    job_id: UUID
    user_id: UUID
    new_tenant_id: UUID
    email: str
    password_hash: str | None
    device: str
    ip: str | None


async def file_signup(db: Database, signup: Signup, key: str | None) -> Signup:
    """Record ``signup``; with ``key``, the one filed first under (email, key)."""
    async with db.tenant(None) as conn:
        row = await conn.fetchrow(_INSERT, *_fields(signup), key)
        if row is None:  # a concurrent retry filed it first
            row = await conn.fetchrow(_BY_KEY, signup.email, key)
    assert row is not None, "a conflicting signup is visible in the no-tenant scope"
    return Signup(**row)


async def find_by_key(db: Database, email: str, key: str) -> Signup | None:
    async with db.tenant(None) as conn:
        row = await conn.fetchrow(_BY_KEY, email, key)
    return None if row is None else Signup(**row)


async def get_signup(db: Database, job_id: str) -> Signup | None:
    async with db.tenant(None) as conn:
        row = await conn.fetchrow(_BY_JOB, job_id)
    return None if row is None else Signup(**row)


async def forget_password(conn: asyncpg.Connection, job_id: str) -> None:
    """Drop the hash once the account holds it (in the account's transaction)."""
    await conn.execute(_FORGET, job_id)


async def open_stream(db: Database, job_id: UUID, lifetime: timedelta) -> tuple[str, datetime]:
    """A new token opening the job's stream for ``lifetime``, and its expiry."""
    token = new_token()
    async with db.tenant(None) as conn:
        expires_at = await conn.fetchval(_OPEN, hash_token(token), job_id, lifetime)
    return token, expires_at


async def stream_job(db: Database, token: str) -> str:
    """The job a live token opens; 404 for an unknown or expired one."""
    async with db.tenant(None) as conn:
        job_id = await conn.fetchval(_RESOLVE, hash_token(token))
    if job_id is None:
        raise AppError.not_found("signup stream")
    return str(job_id)


async def claim_stream(conn: asyncpg.Connection, token: str) -> Signup | None:
    """Claim the link ``token`` for its tokens: its signup, or None if claimed before."""
    row = await conn.fetchrow(_CLAIM, hash_token(token))
    return None if row is None else Signup(**row)


async def prune_signups(db: Database, retention: timedelta) -> int:
    """Delete the links that have expired, and the signups filed longer than
    ``retention`` ago that no link opens any more; how many rows that was."""
    async with db.tenant(None) as conn:
        links = await conn.execute(_PRUNE_LINKS)
        signups = await conn.execute(_PRUNE_SIGNUPS, retention)
    return sum(int(status.split()[-1]) for status in (links, signups))


def _fields(s: Signup) -> tuple[object, ...]:
    return (s.job_id, s.user_id, s.new_tenant_id, s.email, s.password_hash, s.device, s.ip)
