"""API keys: the credential of a tenant's service account.

A key is ``hbk_<tenant id, 32 hex>_<43 random url-safe characters>``. The
tenant part lets a gateway find the key inside its own tenant's
row-level-security scope (no cross-tenant lookup); the random part (256
bits) makes it unguessable, so a plain SHA-256 is a safe stored form: hubbub
keeps only that hash and the key's first characters (``prefix``) to show in
lists. Keys are created and revoked by the tenant entity that owns them
(``hubbub.tenancy.api_keys``); this module reads them where they are presented
and stamps ``last_used_at`` — at most once a minute per key, across every
gateway, by a conditional UPDATE issued only when the row read says it is
stale.

A key belongs to its tenant but acts only while the admin who made it could
make it again: the tenant entity revokes it when that admin is removed or
loses the admin role, and it stops working at once while its creator is
banned by staff (checked here, on every use).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from hubbub.errors import AppError
from hubbub.storage.database import Database

__all__ = [
    "HEADER",
    "PREFIX_LENGTH",
    "ApiKey",
    "IssuedKey",
    "KeyRow",
    "is_api_key",
    "issue_key",
    "list_api_keys",
    "verify_api_key",
]

#: The request header that carries a key.
HEADER = "X-API-Key"
#: How many leading characters of a key lists show.
PREFIX_LENGTH = 12

_MARK = "hbk_"
_FORM = re.compile(r"^hbk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: shown to its creator once; the tenant keeps ``key_hash``."""

    key: str
    key_hash: str  # hex SHA-256
    prefix: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A live key, as presented: who acts (its service account) and how."""

    id: UUID
    tenant_id: UUID
    scopes: frozenset[str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key as listed (masked)."""

    id: UUID
    name: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def issue_key(tenant_id: UUID) -> IssuedKey:
    key = f"{_MARK}{tenant_id.hex}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key, _hash(key).hex(), key[:PREFIX_LENGTH])


def is_api_key(token: str) -> bool:
    """True when ``token`` looks like a key rather than an access token."""
    return token.startswith(_MARK)


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


_FIND = """SELECT k.id, k.tenant_id, k.scopes, k.expires_at, k.revoked_at,
  k.expires_at <= now() AS expired, u.banned_at IS NOT NULL AS creator_banned,
  k.last_used_at IS NULL OR k.last_used_at < now() - $2::interval AS stale
  FROM api_keys k LEFT JOIN users u ON u.id = k.created_by WHERE k.key_hash = $1"""
_TOUCH = """UPDATE api_keys SET last_used_at = now() WHERE id = $1
  AND (last_used_at IS NULL OR last_used_at < now() - $2::interval)"""


async def verify_api_key(db: Database, key: str) -> ApiKey:
    """The live key ``key``, its use stamped; AppError 401 ``invalid_api_key``,
    ``api_key_revoked`` or ``api_key_expired``."""
    match = _FORM.match(key)
    if match is None:
        raise _refused("invalid_api_key", "the API key is not known")
    tenant_id = UUID(hex=match[1])
    async with db.tenant(tenant_id) as conn:
        row = await conn.fetchrow(_FIND, _hash(key), _TOUCH_EVERY)
        _check(row)
        assert row is not None
        if row["stale"]:
            await conn.execute(_TOUCH, row["id"], _TOUCH_EVERY)
    return ApiKey(row["id"], tenant_id, frozenset(row["scopes"]), row["expires_at"])


def _check(row: asyncpg.Record | None) -> None:
    if row is None:
        raise _refused("invalid_api_key", "the API key is not known")
    if row["revoked_at"] is not None:
        raise _refused("api_key_revoked", "the API key was revoked")
    if row["creator_banned"]:
        raise _refused("api_key_revoked", "the API key's creator is banned: it acts no more")
    if row["expired"]:
        raise _refused("api_key_expired", "the API key has expired; create a new one")


def _refused(code: str, message: str) -> AppError:
    return AppError(code, message, status=401)


async def list_api_keys(
    db: Database, tenant_id: UUID, *, after: UUID | None, limit: int
) -> list[KeyRow]:
    """``tenant_id``'s keys (revoked and expired included) by id, those after
    ``after``; at most ``limit``. The caller has authorised the request."""
    async with db.tenant(tenant_id) as conn:
        rows = await conn.fetch(
            """SELECT id, name, scopes, prefix, created_at, expires_at, last_used_at, revoked_at
               FROM api_keys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2)
               ORDER BY id LIMIT $3""",
            tenant_id,
            after,
            limit,
        )
    return [KeyRow(**row) for row in rows]
