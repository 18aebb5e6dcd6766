"""Invite tokens: random secrets that also name their tenant.

A token is ``hbi_<tenant id, 32 hex>_<43 random url-safe characters>``. The
tenant part lets the accept endpoint address the tenant entity that owns
the invite without any cross-tenant lookup (row-level security stays
whole); the random part is what makes it unguessable. hubbub stores only
the token's SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from uuid import UUID

from hubbub.errors import AppError

__all__ = ["hash_token", "new_token", "tenant_of"]

_FORM = re.compile(r"^hbi_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


def new_token(tenant_id: UUID) -> str:
    return f"hbi_{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The hex SHA-256 the tenant keeps of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def tenant_of(token: str) -> UUID:
    """The tenant a token belongs to; 400 ``invalid_invite_token`` if malformed."""
    match = _FORM.match(token)
    if match is None:
        raise AppError("invalid_invite_token", "the invite token is not known", status=400)
    return UUID(hex=match[1])
