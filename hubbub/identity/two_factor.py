"""Two-factor authentication: the ``two_factor``, ``recovery_codes`` and
``login_challenges`` tables.

States of an account: *disabled* (no row), *pending* (set up, not confirmed:
login does not ask for a code yet) and *enabled*. Confirming with a code
enables it and makes ten one-time recovery codes. Once enabled, a correct
password earns a challenge token (:func:`open_challenge`) instead of tokens;
:func:`redeem_challenge` trades it, with a TOTP code or a recovery code,
for the user id to sign in. A TOTP code is accepted only for a time step
newer than the last one accepted, so a code works once.

Every function takes the time (``now``, Unix seconds) it should judge codes
by; expiry of challenges is judged by Postgres' clock, as for sessions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.identity.sealing import SecretBox, SecretUnreadable
from hubbub.identity.totp import (
    match_step,
    new_recovery_codes,
    recovery_code_hash,
    token_hash,
)
from hubbub.storage.database import Database

__all__ = [
    "CHALLENGE_LIFETIME",
    "MAX_CHALLENGE_FAILURES",
    "Proof",
    "TwoFactorStatus",
    "begin_setup",
    "confirm",
    "disable",
    "get_status",
    "is_enabled",
    "open_challenge",
    "redeem_challenge",
    "replace_recovery_codes",
    "revoke_recovery_code",
]

CHALLENGE_LIFETIME = timedelta(minutes=5)
MAX_CHALLENGE_FAILURES = 5

State = Literal["disabled", "pending", "enabled"]


@dataclass(frozen=True, slots=True)
class TwoFactorStatus:
    state: State
    enabled_at: datetime | None
    recovery_codes_remaining: int


@dataclass(frozen=True, slots=True)
class Proof:
    """The second factor of a challenge: exactly one of the two."""

    code: str | None = None
    recovery_code: str | None = None


async def get_status(conn: asyncpg.Connection, user_id: UUID) -> TwoFactorStatus:
    row = await conn.fetchrow("SELECT enabled_at FROM two_factor WHERE user_id = $1", user_id)
    if row is None:
        return TwoFactorStatus("disabled", None, 0)
    if row["enabled_at"] is None:
        return TwoFactorStatus("pending", None, 0)
    return TwoFactorStatus("enabled", row["enabled_at"], await _remaining(conn, user_id))


async def is_enabled(conn: asyncpg.Connection, user_id: UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM two_factor WHERE user_id = $1 AND enabled_at IS NOT NULL", user_id
    )
    return found is not None


async def begin_setup(conn: asyncpg.Connection, user_id: UUID, sealed_secret: bytes) -> None:
    """Store a new pending secret (replacing a pending one); 409 if 2FA is enabled."""
    stored = await conn.fetchval(
        """INSERT INTO two_factor (user_id, secret) VALUES ($1, $2)
           ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = now()
           WHERE two_factor.enabled_at IS NULL
           RETURNING user_id""",
        user_id,
        sealed_secret,
    )
    if stored is None:
        raise AppError(
            "two_factor_already_enabled",
            "two-factor authentication is already enabled; disable it first",
            status=409,
        )


async def confirm(
    conn: asyncpg.Connection, box: SecretBox, user_id: UUID, code: str, now: float
) -> list[str]:
    """Enable the pending secret if ``code`` is its current code; the new
    recovery codes (shown once). Run it in a transaction."""
    row = await conn.fetchrow(
        "SELECT secret, enabled_at FROM two_factor WHERE user_id = $1 FOR UPDATE", user_id
    )
    if row is None or row["enabled_at"] is not None:
        raise AppError(
            "two_factor_not_pending",
            "expected a pending setup: call /2fa/setup first (and not after enabling)",
            status=409,
        )
    step = match_step(_open(box, row["secret"], user_id), code, now)
    if step is None:
        raise _wrong_code(status=400)
    await conn.execute(
        "UPDATE two_factor SET enabled_at = now(), last_step = $2 WHERE user_id = $1",
        user_id,
        step,
    )
    return await _store_new_codes(conn, user_id)


async def disable(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Forget the secret and the recovery codes (a pending setup too); 409 if none."""
    removed = await conn.fetchval(
        "DELETE FROM two_factor WHERE user_id = $1 RETURNING user_id", user_id
    )
    if removed is None:
        raise _not_enabled()
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)


async def replace_recovery_codes(conn: asyncpg.Connection, user_id: UUID) -> list[str]:
    """A new set of recovery codes; every older code stops working. Run it in a
    transaction."""
    await _lock_enabled(conn, user_id)
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
    return await _store_new_codes(conn, user_id)


async def revoke_recovery_code(conn: asyncpg.Connection, user_id: UUID, code: str) -> int:
    """Revoke one unused recovery code; how many usable codes remain."""
    await _lock_enabled(conn, user_id)
    revoked = await conn.fetchval(
        """UPDATE recovery_codes SET revoked_at = now()
           WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL AND revoked_at IS NULL
           RETURNING 1""",
        user_id,
        recovery_code_hash(code),
    )
    if revoked is None:
        raise AppError(
            "invalid_recovery_code", "expected one of your unused recovery codes", status=400
        )
    return await _remaining(conn, user_id)


async def open_challenge(conn: asyncpg.Connection, user_id: UUID) -> str:
    """A new challenge token for ``user_id``, valid for :data:`CHALLENGE_LIFETIME`."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO login_challenges (token_hash, user_id, expires_at)
           VALUES ($1, $2, now() + $3::interval)""",
        token_hash(token),
        user_id,
        CHALLENGE_LIFETIME,
    )
    return token


async def redeem_challenge(
    db: Database, box: SecretBox, token: str, proof: Proof, now: float
) -> UUID:
    """The user id behind ``token`` if ``proof`` is right; the challenge is then
    spent. A wrong proof counts against the challenge (it dies after
    :data:`MAX_CHALLENGE_FAILURES`); AppError 401 with the reason."""
    async with db.pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                """SELECT c.user_id, c.used_at, c.failures, c.expires_at <= now() AS expired,
                          f.secret, f.last_step
                   FROM login_challenges c
                   JOIN two_factor f ON f.user_id = c.user_id AND f.enabled_at IS NOT NULL
                   WHERE c.token_hash = $1 FOR UPDATE OF c, f""",
                token_hash(token),
            )
            _check_challenge(row)
            error = await _check_proof(conn, box, row, proof, now)
            if error is None:
                await conn.execute(
                    "UPDATE login_challenges SET used_at = now() WHERE token_hash = $1",
                    token_hash(token),
                )
                return row["user_id"]
            await conn.execute(
                "UPDATE login_challenges SET failures = failures + 1 WHERE token_hash = $1",
                token_hash(token),
            )
        raise error  # after the commit: the failure stays counted


def _check_challenge(row: asyncpg.Record | None) -> None:
    if row is None:
        raise _refused("invalid_challenge", "the challenge token is not known; log in again")
    if row["used_at"] is not None:
        raise _refused("challenge_used", "the challenge token was already used; log in again")
    if row["expired"]:
        raise _refused("challenge_expired", "the challenge token has expired; log in again")
    if row["failures"] >= MAX_CHALLENGE_FAILURES:
        raise _refused("challenge_exhausted", "too many wrong codes; log in again")


async def _check_proof(
    conn: asyncpg.Connection, box: SecretBox, row: asyncpg.Record, proof: Proof, now: float
) -> AppError | None:
    user_id = row["user_id"]
    if proof.recovery_code is not None:
        return await _use_recovery_code(conn, user_id, proof.recovery_code)
    assert proof.code is not None, "Proof carries a code or a recovery code"
    step = match_step(_open(box, row["secret"], user_id), proof.code, now)
    if step is None:
        return _wrong_code(status=401)
    if row["last_step"] is not None and step <= row["last_step"]:
        return _refused("two_factor_code_reused", "this code was already used; wait for the next")
    await conn.execute("UPDATE two_factor SET last_step = $2 WHERE user_id = $1", user_id, step)
    return None


async def _use_recovery_code(conn: asyncpg.Connection, user_id: UUID, code: str) -> AppError | None:
    row = await conn.fetchrow(
        """SELECT used_at, revoked_at FROM recovery_codes
           WHERE user_id = $1 AND code_hash = $2 FOR UPDATE""",
        user_id,
        recovery_code_hash(code),
    )
    if row is None or row["revoked_at"] is not None:
        return _refused("invalid_recovery_code", "expected one of your recovery codes")
    if row["used_at"] is not None:
        return _refused("recovery_code_used", "this recovery code was already used")
    await conn.execute(
        "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2",
        user_id,
        recovery_code_hash(code),
    )
    return None


async def _lock_enabled(conn: asyncpg.Connection, user_id: UUID) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM two_factor WHERE user_id = $1 AND enabled_at IS NOT NULL FOR UPDATE",
        user_id,
    )
    if found is None:
        raise _not_enabled()


async def _store_new_codes(conn: asyncpg.Connection, user_id: UUID) -> list[str]:
    codes = new_recovery_codes()
    await conn.executemany(
        "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
        [(user_id, recovery_code_hash(code)) for code in codes],
    )
    return codes


async def _remaining(conn: asyncpg.Connection, user_id: UUID) -> int:
    return await conn.fetchval(
        """SELECT count(*) FROM recovery_codes
           WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL""",
        user_id,
    )


def _open(box: SecretBox, stored: bytes, user_id: UUID) -> str:
    try:
        return box.open(stored, user_id)
    except SecretUnreadable as exc:
        raise AppError.unavailable(
            "two_factor_unavailable",
            f"the TOTP secret cannot be read ({exc}): expected HUBBUB_TWO_FACTOR_KEY "
            "to be the key it was stored with",
        ) from None


def _wrong_code(*, status: int) -> AppError:
    return AppError("invalid_two_factor_code", "the code is wrong or too old", status=status)


def _not_enabled() -> AppError:
    return AppError(
        "two_factor_not_enabled", "two-factor authentication is not enabled", status=409
    )


def _refused(code: str, message: str) -> AppError:
    return AppError(code, message, status=401)
