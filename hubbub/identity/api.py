"""HTTP routes of accounts and sessions, under ``/api/v1/auth``, and the JWKS."""

from __future__ import annotations

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.keys import KEYRING
from hubbub.identity.login_guard import LOGIN_GUARD
from hubbub.identity.recovery import queue_verification
from hubbub.identity.revocation import announce_revoked
from hubbub.identity.sessions import (
    list_live_sessions,
    refresh_token_owner,
    revoke_all_sessions,
    revoke_session,
    rotate_refresh_token,
)
from hubbub.identity.sign_in import open_session, refresh_lifetime, token_answer
from hubbub.identity.signup import RATE_LIMITED, SignupRequestView, signup_gate
from hubbub.identity.standing import refuse_if_barred
from hubbub.identity.two_factor_api import TwoFactorChallenge, challenge_if_enabled
from hubbub.identity.users import create_user, email_taken, find_for_login, get_user
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
from hubbub.mail.delivery import MAIL
from hubbub.services import DATABASE, REDIS

__all__ = ["api", "jwks_api"]

api = Api("auth", "Accounts, login sessions and access tokens.")
jwks_api = Api("keys", "Public keys that verify access tokens.")

BASE = "/api/v1/auth"
BEARER = ("bearer",)


@api.post(
    f"{BASE}/register",
    body=NewAccount,
    response=AuthTokens,
    status=201,
    alternatives={
        202: (
            "Signup policy `approval`: a signup request was filed for staff to approve",
            SignupRequestView,
        )
    },
    responses={
        403: "Signup policy `invite_only`: accounts come only from invites (`signup_invite_only`)",
        409: "The email already has an account (`email_taken`) or a pending signup request "
        "(`signup_request_pending`)",
        429: RATE_LIMITED,
    },
)
async def register(request: web.Request, *, body: NewAccount) -> AuthTokens | web.Response:
    """Create an account and log it in (see the deployment's signup policy)."""
    if (filed := await signup_gate(request, body)) is not None:
        return filed
    password_hash = await passwords.hash_password(body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        user = await create_user(
            conn, email=body.email, name=body.name, password_hash=password_hash
        )
        if user is None:
            raise email_taken()
        session_id, refresh_token = await open_session(request, conn, user.id)
        await queue_verification(request, conn, user)
    request.app[MAIL].wake()
    return await token_answer(request, user, session_id, refresh_token)


@api.post(
    f"{BASE}/login",
    body=Credentials,
    response=AuthTokens,
    alternatives={
        202: ("Two-factor authentication is on: finish at /2fa/verify", TwoFactorChallenge)
    },
    responses={
        401: "Unknown email or wrong password (`invalid_credentials`)",
        403: "The account is banned (`account_banned`) or locked by staff "
        "(`account_locked_by_staff`)",
        423: "Too many failed logins: the account is locked for a while (`account_locked`, "
        "`Retry-After`)",
        429: "Too many logins from this address or to this account (`rate_limited`, `Retry-After`)",
    },
)
async def login(request: web.Request, *, body: Credentials) -> AuthTokens | web.Response:
    """Log in with email and password: a new session, or a 2FA challenge."""
    guard = request.app[LOGIN_GUARD]
    device = await guard.known_device(body.email, body.device_token)
    await guard.check(body.email, request.remote, device)
    async with request.app[DATABASE].pool.acquire() as conn:
        found = await find_for_login(conn, body.email)
    if found is None:
        await passwords.waste_a_verification(body.password)
        await guard.failed(body.email, device)
        raise _bad_credentials()
    user, password_hash = found
    if not await passwords.verify_password(password_hash, body.password):
        await guard.failed(body.email, device)
        raise _bad_credentials()
    await guard.succeeded(body.email, device)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        await refuse_if_barred(conn, user.id)
        challenge = await challenge_if_enabled(conn, user.id)
        if challenge is not None:
            return challenge
        session_id, refresh_token = await open_session(request, conn, user.id)
    answer = await token_answer(request, user, session_id, refresh_token)
    answer.device_token = await guard.remember_device(body.email, body.device_token)
    return answer


@api.post(
    f"{BASE}/refresh",
    body=RefreshRequest,
    response=AuthTokens,
    responses={
        401: "`invalid_refresh_token`, `refresh_token_expired`, `session_revoked`, or "
        "`refresh_token_reused` (the session is now revoked)",
        403: "The account is banned (`account_banned`) or locked by staff "
        "(`account_locked_by_staff`)",
    },
)
async def refresh(request: web.Request, *, body: RefreshRequest) -> AuthTokens:
    """Trade a refresh token for new tokens; the presented one dies."""
    db = request.app[DATABASE]
    owner = await refresh_token_owner(db, body.refresh_token)
    if owner is not None:
        await refuse_if_barred(db, owner[0])
    try:
        refreshed = await rotate_refresh_token(db, body.refresh_token, refresh_lifetime(request))
    except AppError as error:
        if error.code == "refresh_token_reused" and owner is not None:
            await announce_revoked(request.app[REDIS], session_ids=[owner[1]])
        raise
    async with db.pool.acquire() as conn:
        user = await get_user(conn, refreshed.user_id)
    assert user is not None, "a session always belongs to an existing user"
    return await token_answer(request, user, refreshed.session_id, refreshed.refresh_token)


@api.post(f"{BASE}/logout", security=BEARER)
async def logout(request: web.Request) -> None:
    """End this session: its refresh token and access tokens stop working."""
    claims = await authenticate_request(request)
    await revoke_session(request.app[DATABASE], claims.session_id, claims.user_id, "logout")
    await announce_revoked(request.app[REDIS], session_ids=[claims.session_id])


@api.post(f"{BASE}/logout-all", security=BEARER)
async def logout_all(request: web.Request) -> None:
    """End every session of this account, this one included."""
    claims = await authenticate_request(request)
    await revoke_all_sessions(request.app[DATABASE], claims.user_id, "logout_all")
    await announce_revoked(request.app[REDIS], user_id=claims.user_id)


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
    await announce_revoked(request.app[REDIS], session_ids=[path.session_id])


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


def _bad_credentials() -> AppError:
    return AppError("invalid_credentials", "the email or password is wrong", status=401)
