"""Typing indicators: relayed over Redis pub/sub, never stored, never through a shard.

``typing {conversation_id, state: "start" | "stop"}`` from a socket that
joined the conversation is published on the conversation's bus topic as
``typing {conversation_id, user_id, state}``; every gateway writes it to its
sockets in the conversation's room except the typing user's own
(``rooms.UNECHOED``). Membership is the join's: no Ray call, no Postgres.

The gateway of the typing socket owns the indicator. A ``start`` relays at
most once per ``typing_relay_seconds`` per socket and conversation; the
starts in between only push the indicator's deadline. When the deadline
passes (``typing_ttl_seconds`` after the last start) the owner publishes
``stop`` itself, as it does when the socket disconnects. One timer per live
indicator, re-armed lazily when it fires, never one per keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.chat.events import channel
from hubbub.chat.rooms import ConversationRooms
from hubbub.chat.sockets import ROOMS
from hubbub.errors import AppError, FieldError
from hubbub.http.routing import validation_error
from hubbub.realtime.server import SocketContext
from hubbub.services import Services
from hubbub.storage import pubsub

__all__ = ["TYPING", "TYPING_EVENTS", "TypingRelay", "typing_relay"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]  # (sid, conversation id)


class _Typing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: UUID
    state: Literal["start", "stop"]


@dataclass(slots=True)
class _Indicator:
    user_id: str
    deadline: float
    relayed_at: float
    timer: asyncio.TimerHandle | None = None


class TypingRelay:
    """Owns: the typing indicators of this gateway's sockets.

    Concurrency: one event loop; state changes are synchronous, publishes run
    after them. Durability: none — a crashed gateway's indicators are ended
    by the receivers' own clocks (``ttl_ms`` in each start). Failure: a
    failed publish is logged and counted in ``dropped``; typing is best effort.
    """

    def __init__(
        self,
        rooms: ConversationRooms,
        redis: Redis,
        ttl: float,
        relay_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rooms = rooms
        self._redis = redis
        self.ttl = ttl
        self._interval = relay_interval
        self._clock = clock
        self._indicators: dict[_Key, _Indicator] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    async def typing(self, sid: str, user_id: str, conversation_id: str, state: str) -> None:
        """Apply one ``typing`` event of socket ``sid``; 404 unless it joined."""
        if not self._rooms.is_joined(sid, conversation_id):
            raise AppError(
                "not_found",
                f"conversation {conversation_id} was not found among those this socket "
                "joined (send conversation:join first)",
                status=404,
            )
        if state == "start":
            await self._start((sid, conversation_id), user_id)
        else:
            await self._stop((sid, conversation_id))

    async def forget(self, sid: str) -> None:
        """The socket disconnected: end its indicators now."""
        for key in [key for key in self._indicators if key[0] == sid]:
            await self._stop(key)

    async def close(self) -> None:
        for indicator in self._indicators.values():
            if indicator.timer is not None:
                indicator.timer.cancel()
        self._indicators.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _start(self, key: _Key, user_id: str) -> None:
        now = self._clock()
        indicator = self._indicators.get(key)
        if indicator is not None:
            indicator.deadline = now + self.ttl
            if now - indicator.relayed_at < self._interval:
                return
            indicator.relayed_at = now
        else:
            indicator = self._indicators[key] = _Indicator(user_id, now + self.ttl, now)
            indicator.timer = asyncio.get_running_loop().call_later(self.ttl, self._due, key)
        await self._publish(key, user_id, "start")

    async def _stop(self, key: _Key) -> None:
        indicator = self._indicators.pop(key, None)
        if indicator is None:
            return
        if indicator.timer is not None:
            indicator.timer.cancel()
        await self._publish(key, indicator.user_id, "stop")

    def _due(self, key: _Key) -> None:
        indicator = self._indicators.get(key)
        if indicator is None:
            return
        left = indicator.deadline - self._clock()
        if left > 0:  # refreshed since the timer was set
            indicator.timer = asyncio.get_running_loop().call_later(left, self._due, key)
            return
        task = asyncio.get_running_loop().create_task(self._stop(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, key: _Key, user_id: str, state: str) -> None:
        conversation_id = key[1]
        data: dict[str, Any] = {
            "conversation_id": conversation_id,
            "user_id": user_id,
            "state": state,
        }
        if state == "start":
            data["ttl_ms"] = round(self.ttl * 1000)
        try:
            message = (channel(conversation_id), pubsub.encode("typing", data))
            await pubsub.publish_many(self._redis, [message])
        except (RedisError, OSError) as exc:
            self.dropped += 1
            log.warning("typing in %s not relayed: %s", conversation_id, exc)


TYPING = web.AppKey("typing_relay", TypingRelay)


def _relay(context: SocketContext) -> TypingRelay:
    return context.app[TYPING]


async def typing(context: SocketContext, data: Any) -> dict[str, Any]:
    """Start or stop this user's typing indicator in a conversation joined here."""
    try:
        payload = _Typing.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        errors = [FieldError("body", ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise validation_error(errors) from None
    relay = _relay(context)
    conversation_id = str(payload.conversation_id)
    user_id = context.principal.user_id
    if user_id is None:
        raise AppError.not_found(f"conversation {conversation_id}")
    await relay.typing(context.sid, user_id, conversation_id, payload.state)
    return {
        "conversation_id": conversation_id,
        "state": payload.state,
        "ttl_ms": round(relay.ttl * 1000),
    }


TYPING_EVENTS = {"typing": typing}


async def typing_relay(services: Services) -> AsyncIterator[None]:
    """This gateway's typing relay (a cleanup context, after the conversation rooms)."""
    settings = services.settings
    relay = services.app[TYPING] = TypingRelay(
        services.app[ROOMS],
        services.redis,
        settings.typing_ttl_seconds,
        settings.typing_relay_seconds,
    )
    services.realtime.on_disconnect(relay.forget)
    yield
    await relay.close()
