"""Tenant memberships a gateway's sockets act on, without a Ray call per event.

A socket event in a tenant (a chat message, a read mark) needs its user to
still be a member. Asking the tenant entity at every event doubled the Ray
round trips of a chat message, so the gateway remembers each membership the
entity confirmed and forgets it when

- ``tenant:access_revoked`` for that user, or for the whole tenant, reaches
  the gateway on the ``tenant-access`` topic, moments after the removal
  commits (:mod:`hubbub.tenancy.eviction`);
- that subscription was down: a revocation may have been missed, so nothing
  is trusted while it is down and everything is forgotten once it is back;
- :data:`CONFIRMED_FOR` seconds passed, a bound for a revocation lost in a
  way the subscription cannot see.

Socket handlers of any capability call :func:`acting` for the socket's
tenant and user. HTTP requests never use it: they ask the entity every time
(:mod:`hubbub.tenancy.access`).
"""

from __future__ import annotations

import time

from aiohttp import web

from hubbub.actors.router import Router
from hubbub.errors import AppError
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.server import SocketContext
from hubbub.services import ROUTER
from hubbub.tenancy.access import authorize

__all__ = ["CONFIRMED_FOR", "CONFIRMED_MEMBERS", "ConfirmedMembers", "acting"]

#: Seconds a confirmation is trusted even if no revocation arrives.
CONFIRMED_FOR = 30.0
_PRUNE_FIRST_AT = 10_000


class ConfirmedMembers:
    """Owns: when each confirmed ``(tenant_id, user_id)`` lapses.

    Concurrency: one event loop. A confirmation that was in flight while
    anything was forgotten is not kept, so a revocation that overtakes the
    entity's answer still wins.
    """

    def __init__(self, revocations: Fanout) -> None:
        self._revocations = revocations
        self._lapses: dict[tuple[str, str], float] = {}
        self._forgettings = 0
        self._prune_at = _PRUNE_FIRST_AT

    async def require(self, router: Router, tenant_id: str, user_id: str) -> None:
        """Return if ``user_id`` is a member of ``tenant_id``; AppError 404 if not
        (asking the tenant entity through ``router`` unless already confirmed)."""
        key = (tenant_id, user_id)
        trusted = self._revocations.subscribed
        if trusted and self._lapses.get(key, 0.0) > time.monotonic():
            return
        forgettings = self._forgettings
        await authorize(router, tenant_id, user_id)
        if trusted and forgettings == self._forgettings and self._revocations.subscribed:
            self._remember(key)

    def forget(self, tenant_id: str, user_id: str | None) -> None:
        """Ask the entity again about ``user_id`` (None: everyone) in ``tenant_id``."""
        self._forgettings += 1
        if user_id is not None:
            self._lapses.pop((tenant_id, user_id), None)
        else:
            for key in [key for key in self._lapses if key[0] == tenant_id]:
                del self._lapses[key]

    def forget_all(self) -> None:
        self._forgettings += 1
        self._lapses.clear()

    def __len__(self) -> int:
        return len(self._lapses)

    def _remember(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        if len(self._lapses) >= self._prune_at:  # drop lapsed ones, amortised O(1)
            self._lapses = {k: lapse for k, lapse in self._lapses.items() if lapse > now}
            self._prune_at = max(_PRUNE_FIRST_AT, 2 * len(self._lapses))
        self._lapses[key] = now + CONFIRMED_FOR


CONFIRMED_MEMBERS = web.AppKey("confirmed_members", ConfirmedMembers)


async def acting(context: SocketContext) -> tuple[web.Application, str, str]:
    """``(app, tenant_id, user_id)`` of a socket that may act in its tenant."""
    principal = context.principal
    if principal.tenant_id is None or principal.user_id is None:
        raise AppError(
            "tenant_required",
            "expected the socket's handshake auth to name a tenant_id",
            status=400,
        )
    app = context.app
    await app[CONFIRMED_MEMBERS].require(app[ROUTER], principal.tenant_id, principal.user_id)
    return app, principal.tenant_id, principal.user_id
