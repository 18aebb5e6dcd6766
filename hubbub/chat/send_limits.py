"""How fast one socket and one user may send messages (docs/auth.md, "Rate limits").

Both edges' sends pass :meth:`SendLimits.check` inside
:func:`hubbub.chat.commands.send_message`: a socket's own budget
(``HUBBUB_MESSAGE_LIMIT_PER_SOCKET``) first, then its user's, shared by every
socket, HTTP request and gateway of that user (``HUBBUB_MESSAGE_LIMIT_PER_USER``).
A send past either is refused with 429 ``rate_limited`` and ``retry_after``
before it reaches the conversation, so it changes nothing.

Neither costs a Redis round trip per message: the socket's budget is a
:class:`~hubbub.ratelimit.LocalBucket` (a socket lives on one gateway), and
the user's is a :class:`~hubbub.ratelimit.ReservedBudget`, which takes the
user's shared hits from Redis a few at a time.
"""

from __future__ import annotations

import time

from aiohttp import web

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.metrics import RATE_LIMIT_REFUSALS
from hubbub.ratelimit import Limit, LocalBucket, RateLimiter, ReservedBudget, refusal

__all__ = ["SEND_LIMITS", "SendLimits"]


_SOCKET_REFUSALS = RATE_LIMIT_REFUSALS.labels("message_socket")
_USER_REFUSALS = RATE_LIMIT_REFUSALS.labels("message_user")


class SendLimits:
    """Owns: this gateway's send bucket of each socket that sent, and its reserve
    of each user's shared budget.

    Concurrency: one event loop; the per-socket check never awaits. Durability:
    socket buckets end with their socket (:meth:`forget`) or the process; the
    users' budgets live in Redis. Failure: a Redis error propagates (the send
    fails) rather than letting sends through unchecked.
    """

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.per_socket = Limit.parse(settings.message_limit_per_socket)
        self._per_user = ReservedBudget(limiter, Limit.parse(settings.message_limit_per_user))
        self._sockets: dict[str, LocalBucket] = {}

    async def check(self, user: str, socket: str | None = None) -> None:
        """Spend one send of ``socket`` (when the send came on one) and of ``user``;
        AppError 429 ``rate_limited`` with ``retry_after`` when either is spent (a
        socket's refusal spends nothing of the user's)."""
        if socket is not None:
            bucket = self._sockets.get(socket)
            if bucket is None:
                bucket = self._sockets[socket] = LocalBucket(self.per_socket)
            wait = bucket.take(time.monotonic_ns())
            if wait > 0:
                _SOCKET_REFUSALS.inc()
                raise refusal(self.per_socket, wait)
        try:
            await self._per_user.hit(f"message:user:{user}")
        except AppError:
            _USER_REFUSALS.inc()
            raise

    async def forget(self, socket: str) -> None:
        """Socket ``socket`` disconnected: drop its bucket."""
        self._sockets.pop(socket, None)


SEND_LIMITS = web.AppKey("send_limits", SendLimits)
