"""Access tokens: short-lived JWTs signed with EdDSA (Ed25519), naming their key.

Claims: ``iss`` (``hubbub``), ``sub`` (user id), ``sid`` (session id),
``iat`` and ``exp``; the header carries ``kid``. A token says who and which
session; whether the session is still live is checked by the caller
(``bearer.py``), since revocation must work before ``exp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from hubbub.errors import AppError
from hubbub.identity.keys import KeyRing, SigningKey

__all__ = ["ISSUER", "AccessClaims", "issue_access_token", "verify_access_token"]

ISSUER = "hubbub"
ALGORITHM = "EdDSA"
_REQUIRED = ["iss", "sub", "sid", "iat", "exp"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """Who a request is. For an API key (``hubbub.identity.api_keys``),
    ``user_id`` and ``session_id`` are the key's id (its service account),
    ``tenant_id`` its tenant and ``scopes`` its scopes; for a token both are
    unset."""

    user_id: UUID
    session_id: UUID
    expires_at: datetime
    tenant_id: UUID | None = None
    scopes: frozenset[str] | None = None

    @property
    def is_api_key(self) -> bool:
        return self.scopes is not None


def issue_access_token(
    key: SigningKey, user_id: UUID, session_id: UUID, *, now: datetime, lifetime: timedelta
) -> str:
    """A token for ``user_id`` in ``session_id``, valid from ``now`` for ``lifetime``."""
    claims = {
        "iss": ISSUER,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


async def verify_access_token(token: str, keys: KeyRing) -> AccessClaims:
    """The token's claims; AppError 401 ``token_expired`` or ``invalid_token``."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise _invalid("expected a JWT") from None
    key = await keys.verifying_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise _invalid("the token's key (kid) is unknown or retired")
    try:
        claims = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise AppError("token_expired", "the access token has expired", status=401) from None
    except jwt.InvalidTokenError as exc:
        raise _invalid(str(exc)) from None
    try:
        return AccessClaims(UUID(claims["sub"]), UUID(claims["sid"]), _utc(claims["exp"]))
    except (TypeError, ValueError):
        raise _invalid("expected UUIDs in sub and sid") from None


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _invalid(why: str) -> AppError:
    return AppError("invalid_token", f"the access token is invalid: {why}", status=401)
