"""The last step of every way in (register, login, a 2FA challenge, ...): open
a session for the request's device and answer the tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from aiohttp import web

from hubbub.config import Settings
from hubbub.identity.keys import KEYRING, KeyRing
from hubbub.identity.sessions import create_session
from hubbub.identity.tokens import issue_access_token
from hubbub.identity.users import User
from hubbub.identity.wire import AuthTokens, UserView
from hubbub.services import SETTINGS

__all__ = ["issue_tokens", "open_session", "refresh_lifetime", "token_answer"]

_DEVICE_MAX = 200


async def open_session(
    request: web.Request, conn: asyncpg.Connection, user_id: UUID
) -> tuple[UUID, str]:
    """A new session of ``user_id`` for the request's device: ``(id, refresh token)``."""
    device = request.headers.get("User-Agent", "").strip()[:_DEVICE_MAX] or "unknown"
    return await create_session(
        conn, user_id, device=device, ip=request.remote, lifetime=refresh_lifetime(request)
    )


async def token_answer(
    request: web.Request, user: User, session_id: UUID, refresh_token: str
) -> AuthTokens:
    """The token answer: a fresh access token for ``session_id`` and ``refresh_token``."""
    app = request.app
    return await issue_tokens(app[KEYRING], app[SETTINGS], user, session_id, refresh_token)


async def issue_tokens(
    keys: KeyRing, settings: Settings, user: User, session_id: UUID, refresh_token: str
) -> AuthTokens:
    """:func:`token_answer` away from a request (a job that signs its account in)."""
    lifetime = timedelta(minutes=settings.access_token_minutes)
    key = await keys.signing_key()
    access_token = issue_access_token(
        key, user.id, session_id, now=datetime.now(UTC), lifetime=lifetime
    )
    return AuthTokens(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=int(lifetime.total_seconds()),
        user=UserView.of(user),
    )


def refresh_lifetime(request: web.Request) -> timedelta:
    return timedelta(days=request.app[SETTINGS].refresh_token_days)
