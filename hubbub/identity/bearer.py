"""Who a request or a socket is, from its access token or API key.

A token must verify (signature, ``kid``, expiry) and its session must still
be live: one indexed query per request, so logging out or revoking a
session refuses its access tokens at once, not when they expire.

An API key (``X-API-Key``, or ``auth: {token}`` on a socket) is accepted
only by routes that declare the ``api_key`` scheme (the tenant routes); it
must be known, unrevoked and unexpired (one indexed query in its tenant's
scope), and a key without the ``write`` or ``admin`` scope may only read
(GET, HEAD): anything else answers 403 ``insufficient_scope``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import ROUTE_SECURITY
from hubbub.identity import api_keys
from hubbub.identity.keys import KEYRING
from hubbub.identity.sessions import is_live
from hubbub.identity.tokens import AccessClaims, verify_access_token
from hubbub.realtime.handshake import Principal
from hubbub.services import DATABASE
from hubbub.tenancy.service_accounts import WRITE_SCOPES

__all__ = ["authenticate_request", "authenticate_socket"]


_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_CLAIMS = web.RequestKey("access_claims", AccessClaims)


async def authenticate_request(request: web.Request) -> AccessClaims:
    """The claims of ``Authorization: Bearer <token>`` or, where the route
    accepts keys, of ``X-API-Key``; AppError 401 (or 403 for a key's scope).
    Checked once per request: the routing layer checks every route that
    declares a scheme before its handler runs, and the handler asks again."""
    claims = request.get(_CLAIMS)
    if claims is None:
        claims = request[_CLAIMS] = await _credentials(request)
    return claims


async def _credentials(request: web.Request) -> AccessClaims:
    header = request.headers.get("Authorization")
    if not header and api_keys.HEADER in request.headers:
        return await _api_key_request(request)
    if not header:
        raise _missing("expected an Authorization: Bearer <access token> header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError("invalid_token", "expected Authorization: Bearer <access token>", status=401)
    return await _check(request.app, token.strip())


async def _api_key_request(request: web.Request) -> AccessClaims:
    if "api_key" not in request.get(ROUTE_SECURITY, ()):
        raise AppError(
            "api_key_not_accepted",
            "this endpoint needs Authorization: Bearer <access token>; "
            "API keys work on a tenant's own endpoints",
            status=401,
        )
    claims = await _check_api_key(request.app, request.headers[api_keys.HEADER].strip())
    assert claims.scopes is not None
    if request.method not in _READS and not claims.scopes & WRITE_SCOPES:
        raise AppError(
            "insufficient_scope",
            f"expected an API key with the write or admin scope for {request.method}, "
            f"got scopes {sorted(claims.scopes)}",
            status=403,
        )
    return claims


async def authenticate_socket(
    app: web.Application, environ: Mapping[str, Any], auth: Any
) -> Principal:
    """The Socket.IO authenticator: ``auth: {token: <access token or API key>}``.

    A key's socket has its key id as user and session id (so revoking the key
    disconnects it, ``hubbub.identity.revocation``), its tenant and scopes.
    """
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise _missing("expected auth {token: <access token>} in the Socket.IO handshake")
    if api_keys.is_api_key(token):
        claims = await _check_api_key(app, token)
        return Principal(
            user_id=str(claims.user_id),
            session_id=str(claims.session_id),
            tenant_id=str(claims.tenant_id),
            scopes=claims.scopes or frozenset(),
        )
    claims = await _check(app, token)
    tenant_id = _socket_tenant(auth)
    return Principal(
        user_id=str(claims.user_id), session_id=str(claims.session_id), tenant_id=tenant_id
    )


def _socket_tenant(auth: dict[str, Any]) -> str | None:
    """The optional ``auth.tenant_id`` the socket acts in (membership is checked
    by each capability when the socket acts); 422 if it is not a UUID."""
    value = auth.get("tenant_id")
    if value is None:
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise AppError(
            "validation_failed", f"expected auth.tenant_id to be a UUID, got {value!r}", status=422
        ) from None


async def _check_api_key(app: web.Application, key: str) -> AccessClaims:
    found = await api_keys.verify_api_key(app[DATABASE], key)
    return AccessClaims(found.id, found.id, found.expires_at, found.tenant_id, found.scopes)


async def _check(app: web.Application, token: str) -> AccessClaims:
    claims = await verify_access_token(token, app[KEYRING])
    if not await is_live(app[DATABASE], claims.session_id, claims.user_id):
        raise AppError("session_revoked", "the token's session was revoked", status=401)
    return claims


def _missing(message: str) -> AppError:
    return AppError("unauthenticated", message, status=401)
