"""HTTP routes of email verification and password recovery, under ``/api/v1/auth``.

Every mail is queued in the transaction of the change it reports and the
gateway's delivery loop is woken after commit. Throttling comes first and
spends nothing else: a refused request writes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.letters import link, reset_password_mail, verify_email_mail
from hubbub.identity.login_guard import LOGIN_GUARD, account_key
from hubbub.identity.mail_tokens import Purpose, hash_token, issue, new_token, redeem, retire_open
from hubbub.identity.recovery_wire import (
    ForgotPassword,
    MailTokenBody,
    NewPassword,
    PasswordChange,
)
from hubbub.identity.revocation import announce_revoked
from hubbub.identity.sessions import revoke_all_sessions, revoke_other_sessions
from hubbub.identity.users import User, get_user, mark_email_verified
from hubbub.ids import new_id
from hubbub.mail.delivery import MAIL
from hubbub.mail.outbox import enqueue
from hubbub.ratelimit import RATE_LIMITER, Limit
from hubbub.services import DATABASE, REDIS, SETTINGS

__all__ = ["queue_verification", "recovery_api"]

recovery_api = Api("auth", "Accounts, login sessions and access tokens.")

BASE = "/api/v1/auth"
BEARER = ("bearer",)
TOKEN_CODES = "`mail_token_invalid` (400), `mail_token_used` (410), `mail_token_expired` (410)"


async def queue_verification(request: web.Request, conn: asyncpg.Connection, user: User) -> None:
    """Queue ``user``'s verification mail in ``conn``'s transaction.

    Spends the account's verification budget (``HUBBUB_EMAIL_SEND_LIMIT``)
    first: AppError 429 ``rate_limited`` when it is spent. Wake the mail
    loop after commit (``request.app[MAIL].wake()``).
    """
    settings = request.app[SETTINGS]
    limit = Limit.parse(settings.email_send_limit)
    await request.app[RATE_LIMITER].hit(f"email_send:{user.id}", limit)
    lifetime = timedelta(hours=settings.email_token_hours)
    token = await issue(conn, user.id, user.email, Purpose.VERIFY_EMAIL, lifetime)
    url = link(settings.public_url, "verify-email", token)
    await enqueue(conn, verify_email_mail(user.email, user.name, url, lifetime))


@recovery_api.post(
    f"{BASE}/email/send",
    status=202,
    security=BEARER,
    responses={
        409: "The email is already verified (`email_already_verified`)",
        429: "A verification mail was sent less than a minute ago (`rate_limited`, `Retry-After`)",
    },
)
async def send_verification_email(request: web.Request) -> web.Response:
    """Send a mail with a link that verifies this account's email."""
    claims = await authenticate_request(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        user = await get_user(conn, claims.user_id)
        assert user is not None, "a live session always belongs to an existing user"
        if user.email_verified:
            raise AppError("email_already_verified", "the email is already verified", status=409)
        await queue_verification(request, conn, user)
    request.app[MAIL].wake()
    return web.Response(status=202)


@recovery_api.post(
    f"{BASE}/email/verify",
    body=MailTokenBody,
    responses={400: TOKEN_CODES, 410: TOKEN_CODES},
)
async def verify_email(request: web.Request, *, body: MailTokenBody) -> None:
    """Mark the email verified, with the token of a verification mail."""
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        redeemed = await redeem(conn, body.token, Purpose.VERIFY_EMAIL)
        if not await mark_email_verified(conn, redeemed.user_id, redeemed.email):
            raise AppError(
                "mail_token_invalid", "the account's email changed since this link", status=400
            )


@recovery_api.post(
    f"{BASE}/password/forgot",
    body=ForgotPassword,
    status=202,
    responses={
        429: "Too many reset mails asked for this email or from this address "
        "(`rate_limited`, `Retry-After`)"
    },
)
async def forgot_password(request: web.Request, *, body: ForgotPassword) -> web.Response:
    """Mail a password reset link, if the email has an account; always 202."""
    settings = request.app[SETTINGS]
    limiter = request.app[RATE_LIMITER]
    await limiter.hit(
        f"forgot:ip:{request.remote}",
        Limit.parse(settings.password_forgot_limit_per_ip),
        name="forgot_ip",
    )
    await limiter.hit(
        f"forgot:account:{account_key(body.email)}",
        Limit.parse(settings.password_forgot_limit_per_email),
        name="forgot_account",
    )
    await _queue_reset(request, body.email)
    request.app[MAIL].wake()
    return web.Response(status=202)


@recovery_api.post(
    f"{BASE}/password/confirm",
    body=NewPassword,
    responses={400: TOKEN_CODES, 410: TOKEN_CODES},
)
async def confirm_password_reset(request: web.Request, *, body: NewPassword) -> None:
    """Set a new password with the token of a reset mail; every session ends."""
    password_hash = await passwords.hash_password(body.password)
    db = request.app[DATABASE]
    async with db.pool.acquire() as conn, conn.transaction():
        redeemed = await redeem(conn, body.token, Purpose.RESET_PASSWORD)
        await retire_open(conn, redeemed.user_id, Purpose.RESET_PASSWORD)
        await _set_password(conn, redeemed.user_id, password_hash)
        # The mail reached its owner: that verifies the address too.
        await mark_email_verified(conn, redeemed.user_id, redeemed.email)
    await revoke_all_sessions(db, redeemed.user_id, "password_reset")
    await announce_revoked(request.app[REDIS], user_id=redeemed.user_id, code="password_reset")
    await request.app[LOGIN_GUARD].unlock(redeemed.email)


@recovery_api.post(
    f"{BASE}/password/change",
    body=PasswordChange,
    security=BEARER,
    responses={
        403: "The current password is wrong (`wrong_password`)",
        429: "Too many attempts (`rate_limited`, `Retry-After`)",
    },
)
async def change_password(request: web.Request, *, body: PasswordChange) -> None:
    """Change the password; every other session of the account ends."""
    claims = await authenticate_request(request)
    limit = Limit.parse(request.app[SETTINGS].login_limit_per_account)
    await request.app[RATE_LIMITER].hit(f"password_change:{claims.user_id}", limit)
    db = request.app[DATABASE]
    current = await db.pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", claims.user_id
    )
    if not await passwords.verify_password(current, body.current_password):
        raise AppError("wrong_password", "the current password is wrong", status=403)
    new_hash = await passwords.hash_password(body.new_password)
    async with db.pool.acquire() as conn, conn.transaction():
        await _set_password(conn, claims.user_id, new_hash)
        await retire_open(conn, claims.user_id, Purpose.RESET_PASSWORD)
    await revoke_other_sessions(db, claims.user_id, claims.session_id, "password_changed")
    await announce_revoked(
        request.app[REDIS],
        user_id=claims.user_id,
        except_session_id=claims.session_id,
        code="password_changed",
    )


async def _queue_reset(request: web.Request, email: str) -> None:
    """One statement whether or not ``email`` has an account: the same work either way.

    Inserts the token and its mail only when an account has the address.
    """
    settings = request.app[SETTINGS]
    lifetime = timedelta(minutes=settings.reset_token_minutes)
    token = new_token()
    mail = reset_password_mail(email, link(settings.public_url, "reset-password", token), lifetime)
    await request.app[DATABASE].pool.execute(
        """WITH account AS (SELECT id, email FROM users WHERE lower(email) = lower($1)),
                token AS (
                  INSERT INTO mail_tokens (token_hash, user_id, purpose, email, expires_at)
                  SELECT $2, id, 'reset_password', email, now() + $3::interval FROM account
                  RETURNING email)
           INSERT INTO outbox (id, kind, recipient, subject, body)
           SELECT $4, $5, email, $6, $7 FROM token""",
        email,
        hash_token(token),
        lifetime,
        new_id(),
        mail.kind,
        mail.subject,
        mail.body,
    )


async def _set_password(conn: asyncpg.Connection, user_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)
