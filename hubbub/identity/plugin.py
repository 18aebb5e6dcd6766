"""Identity as a gateway plugin: its routes, its key ring and the authenticators
of sockets and of requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from hubbub.identity.api import api, jwks_api
from hubbub.identity.bearer import authenticate_request, authenticate_socket
from hubbub.identity.keys import KEYRING, KeyRing, ensure_signing_key, signing_key_box
from hubbub.identity.login_guard import LOGIN_GUARD, LoginGuard
from hubbub.identity.recovery import recovery_api
from hubbub.identity.retention import auth_retention
from hubbub.identity.revocation import revocation_listener
from hubbub.identity.signup import api as signup_api
from hubbub.identity.staff_api import staff_api
from hubbub.identity.two_factor_api import two_factor_api
from hubbub.mail.delivery import mail_delivery
from hubbub.plugin import Plugin
from hubbub.ratelimit import RATE_LIMITER, RateLimiter
from hubbub.services import Services

__all__ = ["plugin"]


async def _key_ring(services: Services) -> AsyncIterator[None]:
    """Make sure a signing key exists, then load the keys (after Postgres is up)."""
    db, settings = services.db, services.settings
    secret = settings.two_factor_key
    box = signing_key_box(None if secret is None else secret.get_secret_value())
    await ensure_signing_key(db, box)
    keys = KeyRing(db, timedelta(minutes=settings.access_token_minutes), box)
    await keys.reload()
    services.app[KEYRING] = keys
    yield


async def _rate_limiter(services: Services) -> AsyncIterator[None]:
    """The gateway's rate limiter and login guard, on the shared Redis (after Redis is up)."""
    limiter = services.app[RATE_LIMITER] = RateLimiter(services.redis)
    services.app[LOGIN_GUARD] = LoginGuard(services.redis, limiter, services.settings)
    yield


plugin = Plugin(
    "identity",
    apis=(api, recovery_api, two_factor_api, staff_api, signup_api, jwks_api),
    start=(_key_ring, _rate_limiter, mail_delivery, revocation_listener, auth_retention),
    authenticator=authenticate_socket,
    request_authenticator=authenticate_request,
)
