"""Idempotent tenant creation: what an ``Idempotency-Key`` of
``POST /api/v1/tenants`` stands for (the ``tenant_creations`` table).

Other tenant commands name their tenant, so the shard's idempotency
receipts (kept per entity) absorb their retries. Creating one does not: its
id is new. So the first request with a key claims a tenant id for
``(user, key)`` and records a hash of its body; a retry with the same key
and body gets the same id, and its ``create`` command — carrying the key —
replays the first reply from the tenant entity's receipt (or creates the
tenant, if the first attempt never got that far). The same key with another
body is refused (422 ``idempotency_key_reused``), as the IETF
Idempotency-Key draft advises. Claims live as long as the receipts
(``HUBBUB_IDEMPOTENCY_WINDOW_HOURS``); the purge sweep prunes older ones.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson

from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.storage.database import Database

__all__ = ["Claim", "claim_creation", "forget_claim", "request_hash"]

_CLAIM = """INSERT INTO tenant_creations (user_id, idempotency_key, request_hash, new_tenant_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, idempotency_key) DO UPDATE
  SET request_hash = EXCLUDED.request_hash, new_tenant_id = EXCLUDED.new_tenant_id,
      created_at = now()
  WHERE tenant_creations.created_at < now() - $5::interval
RETURNING new_tenant_id"""
_EXISTING = """SELECT request_hash, new_tenant_id FROM tenant_creations
WHERE user_id = $1 AND idempotency_key = $2"""
_FORGET = """DELETE FROM tenant_creations
WHERE user_id = $1 AND idempotency_key = $2 AND new_tenant_id = $3"""

Claim = tuple[UUID, bool]  # (tenant id, True: newly claimed by this request)


def request_hash(body: dict[str, Any]) -> bytes:
    """SHA-256 of a request body's canonical JSON (sorted keys)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()


async def claim_creation(
    db: Database, user_id: UUID, key: str, body_hash: bytes, window: timedelta
) -> Claim:
    """The tenant id ``(user_id, key)`` stands for, and whether it is new.

    AppError 422 ``idempotency_key_reused`` when the key came with another body.
    """
    async with db.tenant(None) as conn:
        claimed = await conn.fetchval(_CLAIM, user_id, key, body_hash, new_id(), window)
        if claimed is not None:
            return claimed, True
        existing = await conn.fetchrow(_EXISTING, user_id, key)
    if existing is None:  # pruned between the two statements: the key is free again
        return await claim_creation(db, user_id, key, body_hash, window)
    if bytes(existing["request_hash"]) != body_hash:
        raise AppError(
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request body; "
            "expected the same body, or a new key for a new request",
            status=422,
        )
    return existing["new_tenant_id"], False


async def forget_claim(db: Database, user_id: UUID, key: str, tenant_id: UUID) -> None:
    """Free ``key`` after a refusal that created nothing (a retry may then differ)."""
    async with db.tenant(None) as conn:
        await conn.execute(_FORGET, user_id, key, tenant_id)
