"""HTTP routes of accounts and sessions, under ``/api/v1/auth``, and the JWKS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from aiohttp import web

from hubbub.errors import AppError
from hubbub.gateway import DATABASE, SETTINGS
from hubbub.http.routing import Api
from hubbub.identity import passwords
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.keys import KEYRING
from hubbub.identity.sessions import (
    create_session,
    list_live_sessions,
    revoke_all_sessions,
    revoke_session,
    rotate_refresh_token,
)
from hubbub.identity.tokens import issue_access_token
from hubbub.identity.users import User, create_user, find_for_login, get_user
from hubbub.identity.wire import (
    AuthTokens,
    Credentials,
    Jwks,
    NewAccount,
    RefreshRequest,
    SessionList,
    SessionPath,
    SessionView,
    UserView,
)

__all__ = ["api", "jwks_api"]

api = Api("auth", "Accounts, login sessions and access tokens.")
jwks_api = Api("keys", "Public keys that verify access tokens.")

BASE = "/api/v1/auth"
BEARER = ("bearer",)
_DEVICE_MAX = 200


@api.post(
    f"{BASE}/register",
    body=NewAccount,
    response=AuthTokens,
    status=201,
    responses={409: "The email already has an account (`email_taken`)"},
)
async def register(request: web.Request, *, body: NewAccount) -> AuthTokens:
    """Create an account and log it in."""
    password_hash = await passwords.hash_password(body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        user = await create_user(
            conn, email=body.email, name=body.name, password_hash=password_hash
        )
        if user is None:
            raise AppError("email_taken", "an account with this email already exists", status=409)
        session_id, refresh_token = await _open_session(request, conn, user.id)
    return await _tokens(request, user, session_id, refresh_token)


@api.post(
    f"{BASE}/login",
    body=Credentials,
    response=AuthTokens,
    responses={401: "Unknown email or wrong password (`invalid_credentials`)"},
)
async def login(request: web.Request, *, body: Credentials) -> AuthTokens:
    """Log in with email and password: a new session."""
    async with request.app[DATABASE].pool.acquire() as conn:
        found = await find_for_login(conn, body.email)
    if found is None:
        await passwords.waste_a_verification(body.password)
        raise _bad_credentials()
    user, password_hash = found
    if not await passwords.verify_password(password_hash, body.password):
        raise _bad_credentials()
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        session_id, refresh_token = await _open_session(request, conn, user.id)
    return await _tokens(request, user, session_id, refresh_token)


@api.post(
    f"{BASE}/refresh",
    body=RefreshRequest,
    response=AuthTokens,
    responses={
        401: "`invalid_refresh_token`, `refresh_token_expired`, `session_revoked`, or "
        "`refresh_token_reused` (the session is now revoked)"
    },
)
async def refresh(request: web.Request, *, body: RefreshRequest) -> AuthTokens:
    """Trade a refresh token for new tokens; the presented one dies."""
    db = request.app[DATABASE]
    refreshed = await rotate_refresh_token(db, body.refresh_token, _refresh_lifetime(request))
    async with db.pool.acquire() as conn:
        user = await get_user(conn, refreshed.user_id)
    assert user is not None, "a session always belongs to an existing user"
    return await _tokens(request, user, refreshed.session_id, refreshed.refresh_token)


@api.post(f"{BASE}/logout", security=BEARER)
async def logout(request: web.Request) -> None:
    """End this session: its refresh token and access tokens stop working."""
    claims = await authenticate_request(request)
    await revoke_session(request.app[DATABASE], claims.session_id, claims.user_id, "logout")


@api.post(f"{BASE}/logout-all", security=BEARER)
async def logout_all(request: web.Request) -> None:
    """End every session of this account, this one included."""
    claims = await authenticate_request(request)
    await revoke_all_sessions(request.app[DATABASE], claims.user_id, "logout_all")


@api.get(f"{BASE}/sessions", response=SessionList, security=BEARER)
async def list_sessions(request: web.Request) -> SessionList:
    """This account's live sessions, most recently used first."""
    claims = await authenticate_request(request)
    sessions = await list_live_sessions(request.app[DATABASE], claims.user_id)
    return SessionList(items=[SessionView.of(s, claims.session_id) for s in sessions])


@api.delete(
    f"{BASE}/sessions/{{session_id}}",
    params=SessionPath,
    security=BEARER,
    responses={404: "No live session of yours has this id"},
)
async def delete_session(request: web.Request, *, path: SessionPath) -> None:
    """Revoke one of this account's sessions."""
    claims = await authenticate_request(request)
    db = request.app[DATABASE]
    if not await revoke_session(db, path.session_id, claims.user_id, "revoked_by_user"):
        raise AppError.not_found("session")


@api.get(f"{BASE}/me", response=UserView, security=BEARER)
async def me(request: web.Request) -> UserView:
    """The account of the access token."""
    claims = await authenticate_request(request)
    async with request.app[DATABASE].pool.acquire() as conn:
        user = await get_user(conn, claims.user_id)
    assert user is not None, "a live session always belongs to an existing user"
    return UserView.of(user)


@jwks_api.get("/.well-known/jwks.json", response=Jwks)
async def jwks(request: web.Request) -> Jwks:
    """Public keys (Ed25519 JWKs) that verify access tokens, by ``kid``."""
    return Jwks.model_validate({"keys": await request.app[KEYRING].public_jwks()})


async def _open_session(
    request: web.Request, conn: asyncpg.Connection, user_id: UUID
) -> tuple[UUID, str]:
    device = request.headers.get("User-Agent", "").strip()[:_DEVICE_MAX] or "unknown"
    return await create_session(
        conn, user_id, device=device, ip=request.remote, lifetime=_refresh_lifetime(request)
    )


async def _tokens(
    request: web.Request, user: User, session_id: UUID, refresh_token: str
) -> AuthTokens:
    lifetime = timedelta(minutes=request.app[SETTINGS].access_token_minutes)
    key = await request.app[KEYRING].signing_key()
    access_token = issue_access_token(
        key, user.id, session_id, now=datetime.now(UTC), lifetime=lifetime
    )
    return AuthTokens(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=int(lifetime.total_seconds()),
        user=UserView.of(user),
    )


def _refresh_lifetime(request: web.Request) -> timedelta:
    return timedelta(days=request.app[SETTINGS].refresh_token_days)


def _bad_credentials() -> AppError:
    return AppError("invalid_credentials", "the email or password is wrong", status=401)
