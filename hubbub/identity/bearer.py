"""Who a request or a socket is, from its access token.

A token must verify (signature, ``kid``, expiry) and its session must still
be live: one indexed query per request, so logging out or revoking a
session refuses its access tokens at once, not when they expire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hubbub.errors import AppError
from hubbub.gateway import DATABASE
from hubbub.identity.keys import KEYRING
from hubbub.identity.sessions import is_live
from hubbub.identity.tokens import AccessClaims, verify_access_token
from hubbub.realtime.handshake import Principal

__all__ = ["authenticate_request", "authenticate_socket"]


async def authenticate_request(request: web.Request) -> AccessClaims:
    """The claims of ``Authorization: Bearer <token>``; AppError 401 otherwise."""
    header = request.headers.get("Authorization")
    if not header:
        raise _missing("expected an Authorization: Bearer <access token> header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError("invalid_token", "expected Authorization: Bearer <access token>", status=401)
    return await _check(request.app, token.strip())


async def authenticate_socket(environ: Mapping[str, Any], auth: Any) -> Principal:
    """The Socket.IO authenticator: ``auth: {token: <access token>}``."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise _missing("expected auth {token: <access token>} in the Socket.IO handshake")
    claims = await _check(environ["aiohttp.request"].app, token)
    return Principal(user_id=str(claims.user_id), session_id=str(claims.session_id))


async def _check(app: web.Application, token: str) -> AccessClaims:
    claims = await verify_access_token(token, app[KEYRING])
    if not await is_live(app[DATABASE], claims.session_id, claims.user_id):
        raise AppError("session_revoked", "the token's session was revoked", status=401)
    return claims


def _missing(message: str) -> AppError:
    return AppError("unauthenticated", message, status=401)
