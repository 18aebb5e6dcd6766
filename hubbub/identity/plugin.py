"""Identity as a gateway plugin: its routes, its key ring and the socket authenticator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from hubbub.gateway import DATABASE, SETTINGS
from hubbub.identity.api import api, jwks_api
from hubbub.identity.bearer import authenticate_socket
from hubbub.identity.keys import KEYRING, KeyRing, ensure_signing_key
from hubbub.plugin import Plugin

__all__ = ["plugin"]


async def _key_ring(app: web.Application) -> AsyncIterator[None]:
    """Make sure a signing key exists, then load the keys (after Postgres is up)."""
    db = app[DATABASE]
    await ensure_signing_key(db)
    keys = KeyRing(db, verify_for=timedelta(minutes=app[SETTINGS].access_token_minutes))
    await keys.reload()
    app[KEYRING] = keys
    yield


plugin = Plugin(
    "identity",
    apis=(api, jwks_api),
    cleanup_ctx=(_key_ring,),
    authenticator=authenticate_socket,
)
