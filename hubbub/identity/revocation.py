"""Sockets of revoked sessions are disconnected on every gateway.

Whoever revokes sessions (logout, logout-all, a deleted session, refresh
token reuse, a ban or lock, a password change or reset, a revoked API key) calls
:func:`announce_revoked` after the revocation committed. It publishes one
message on the bus topic :data:`REVOCATIONS_TOPIC`, which every gateway's one
bus watches for as long as it runs, routed to its :class:`RevocationListener`. Each
gateway then sends its matching local sockets the event ``auth:revoked``
``{code, message}`` and disconnects them. A socket joins the rooms of its
user and its session when it connects (``hubbub.realtime.server``), so a
revocation costs one lookup per room, not a scan of every socket.

Streams that are no socket — a job's SSE stream — end through the hooks
registered with :meth:`RevocationListener.on_revoked` (the listener is
``REVOCATIONS`` on the app), run after the sockets were disconnected.

Delivery is at most once, like all Redis pub/sub: a gateway whose
subscription is being rebuilt at that moment keeps the socket until it
reconnects, when its revoked token is refused. HTTP requests never depend on
this: every request checks its session in Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.realtime.server import Realtime, session_room, user_room
from hubbub.services import Services
from hubbub.storage import pubsub

__all__ = [
    "REVOCATIONS",
    "REVOCATIONS_TOPIC",
    "REVOKED_EVENT",
    "Revocation",
    "RevocationListener",
    "announce_revoked",
    "revocation_listener",
]

log = logging.getLogger(__name__)

REVOCATIONS_TOPIC = "auth:revocations"
REVOKED_EVENT = "auth:revoked"

_MESSAGES = {
    "session_revoked": "your session was ended; log in again",
    "account_banned": "this account is banned",
    "account_locked_by_staff": "this account is locked by staff",
    "password_changed": "the password was changed; log in again",
    "api_key_revoked": "the API key was revoked",
}


@dataclass(frozen=True, slots=True)
class Revocation:
    """Which sockets to end: those of ``session_ids``, and every socket of
    ``user_id`` except those of ``except_session_id``; ``code`` says why."""

    session_ids: tuple[str, ...] = ()
    user_id: str | None = None
    except_session_id: str | None = None
    code: str = "session_revoked"

    def to_wire(self) -> dict[str, Any]:
        return {
            "session_ids": list(self.session_ids),
            "user_id": self.user_id,
            "except_session_id": self.except_session_id,
            "code": self.code,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Revocation:
        """ValueError unless ``data`` is what :meth:`to_wire` makes."""
        session_ids, code = data.get("session_ids"), data.get("code")
        user_id, spared = data.get("user_id"), data.get("except_session_id")
        if not isinstance(session_ids, list) or not all(isinstance(s, str) for s in session_ids):
            raise ValueError(f"expected session_ids as a list of strings, got {session_ids!r}")
        optional = (user_id, spared)
        if not isinstance(code, str) or not all(v is None or isinstance(v, str) for v in optional):
            raise ValueError(f"expected code, user_id and except_session_id strings, got {data!r}")
        return cls(tuple(session_ids), user_id, spared, code)


async def announce_revoked(
    redis: Redis,
    *,
    session_ids: Iterable[UUID | str] = (),
    user_id: UUID | str | None = None,
    except_session_id: UUID | str | None = None,
    code: str = "session_revoked",
) -> bool:
    """Tell every gateway to disconnect the sockets of ``session_ids`` and, when
    ``user_id`` is given, all of that user's sockets except those of
    ``except_session_id``. Call it after the revocation committed.

    ``code`` is what the client's ``auth:revoked`` event carries (documented
    in docs/events.md). False if Redis refused the message: it is logged, and
    the revocation itself stands (the sockets are refused when they reconnect).
    """
    revocation = Revocation(
        tuple(str(s) for s in session_ids),
        None if user_id is None else str(user_id),
        None if except_session_id is None else str(except_session_id),
        code,
    )
    if not revocation.session_ids and revocation.user_id is None:
        return True
    payload = pubsub.encode(REVOKED_EVENT, revocation.to_wire())
    try:
        await pubsub.publish_many(redis, [(REVOCATIONS_TOPIC, payload)])
    except (RedisError, OSError) as exc:
        log.error("could not announce revocation %s: %s", revocation, exc)
        return False
    return True


class RevocationListener:
    """Owns: the counts of revocations dropped and sockets disconnected here,
    and the hooks that end other live deliveries of a revocation.

    Concurrency: one event loop; revocations are applied one at a time in
    the order the gateway's bus reader hands them over (no Postgres read
    waits in front of them: seq streams repair in their own tasks).
    Failure: the bus rebuilds its subscription; a malformed message is
    logged and counted in ``dropped``.
    """

    def __init__(self, realtime: Realtime) -> None:
        self._realtime = realtime
        self._fanout = realtime.fanout
        self._fanout.route(REVOCATIONS_TOPIC, self._apply)
        self.check = self._fanout.check(REVOCATIONS_TOPIC)
        self.dropped = 0
        self.disconnected = 0
        self._hooks: list[Callable[[Revocation], Awaitable[None]]] = []

    def on_revoked(self, hook: Callable[[Revocation], Awaitable[None]]) -> None:
        """Call ``hook(revocation)`` at every revocation, after its sockets went
        (from the bus reader: it must not wait on Postgres or Ray)."""
        self._hooks.append(hook)

    async def start(self) -> None:
        await self._fanout.watch(REVOCATIONS_TOPIC)

    async def close(self) -> None:
        await self._fanout.unwatch(REVOCATIONS_TOPIC)

    async def _apply(self, topic: str, event: str, data: dict[str, Any]) -> None:
        try:
            revocation = Revocation.from_wire(data)
        except ValueError as exc:
            self.dropped += 1
            log.error("dropped a malformed revocation: %s", exc)
            return
        message = _MESSAGES.get(revocation.code, _MESSAGES["session_revoked"])
        notice = {"code": revocation.code, "message": message}
        for session_id in revocation.session_ids:
            room = session_room(session_id)
            self.disconnected += await self._realtime.disconnect_room(room, REVOKED_EVENT, notice)
        if revocation.user_id is not None:
            spared = revocation.except_session_id
            self.disconnected += await self._realtime.disconnect_room(
                user_room(revocation.user_id),
                REVOKED_EVENT,
                notice,
                sparing=None if spared is None else session_room(spared),
            )
        for hook in self._hooks:
            try:
                await hook(revocation)
            except Exception:  # one failing hook must not spare the others' streams
                log.exception("ending the deliveries of %s failed", revocation)


REVOCATIONS = web.AppKey("revocations", RevocationListener)


async def revocation_listener(services: Services) -> AsyncIterator[None]:
    """The gateway's revocation listener on its bus (a cleanup context)."""
    listener = services.app[REVOCATIONS] = RevocationListener(services.realtime)
    await listener.start()
    services.readiness.add("fanout:revocations", listener.check)
    yield
    await listener.close()
