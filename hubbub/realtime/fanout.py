"""This gateway's end of the fan-out bus.

The gateway subscribes to a topic's Redis channel while at least one local
socket watches it, and hands every event published there to ``deliver``
(which writes it to the local sockets in the topic's room). If the
subscription breaks it is rebuilt with every watched channel (by redis-py's
own reconnect, or here if that gives up); events lost
meanwhile are repaired by receivers from their seq gaps, and ``on_rebuilt``
hears of the rebuild so a receiver without seqs can drop what it trusted.
A probe round trip through Redis tells readiness whether the subscription
really delivers, and :meth:`Fanout.subscribe` whether a topic's new
SUBSCRIBE took effect (once per topic and subscription: later subscribers of
a topic already proven pay no round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from hubbub.errors import AppError
from hubbub.storage import pubsub

__all__ = ["Deliver", "Fanout"]

log = logging.getLogger(__name__)

#: ``(topic, event, data)``: hand one committed event to the local sockets.
Deliver = Callable[[str, str, dict[str, Any]], Awaitable[None]]

_PROBE_EVENT = "hubbub:probe"
_RECONNECT_MAX_DELAY = 5.0
_PROBE_TIMEOUT = 2.0


class Fanout:
    """Owns: one Redis pub/sub connection and the count of watchers per topic.

    Concurrency: one event loop; one listener task owned by this object.
    Failure: a broken subscription is rebuilt with backoff; ``probe`` fails
    until it delivers again. Undecodable messages are counted, not raised.
    """

    def __init__(
        self, redis: Redis, deliver: Deliver, on_rebuilt: Callable[[], None] | None = None
    ) -> None:
        self._redis = redis
        self._deliver = deliver
        self._on_rebuilt = on_rebuilt
        self._watchers: Counter[str] = Counter()
        self._proven: set[str] = set()  # watched topics known to deliver
        self._subscription = 0  # counts rebuilds: a proof holds for one subscription
        self._probe_topic = f"probe:{uuid.uuid4().hex}"
        self._probes: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self.dropped = 0

    async def start(self) -> None:
        self._pubsub = await self._subscribe_all()  # fail fast if Redis is down at start
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()

    @property
    def subscribed(self) -> bool:
        """Whether events published now reach ``deliver`` (as far as this end knows)."""
        connection = None if self._pubsub is None else self._pubsub.connection
        return connection is not None and connection.is_connected

    async def watch(self, topic: str) -> None:
        """Receive ``topic``'s events from now on (reference-counted)."""
        self._watchers[topic] += 1
        if self._watchers[topic] == 1 and self._pubsub is not None:
            await self._pubsub.subscribe(pubsub.channel_name(topic))

    async def subscribe(self, topic: str) -> None:
        """Watch ``topic``; on return its events are known to arrive (a probe
        round trip proves it, unless one did for this topic already)."""
        await self.watch(topic)
        if topic in self._proven:
            return
        subscription = self._subscription
        await self.probe()
        if subscription == self._subscription and topic in self._watchers:
            self._proven.add(topic)

    async def unwatch(self, topic: str) -> None:
        if self._watchers[topic] <= 0:
            return
        self._watchers[topic] -= 1
        if self._watchers[topic] == 0:
            del self._watchers[topic]
            self._proven.discard(topic)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError):
                    await self._pubsub.unsubscribe(pubsub.channel_name(topic))

    async def probe(self) -> dict[str, Any]:
        """Publish to this gateway's own probe topic and wait to receive it."""
        nonce = uuid.uuid4().hex
        arrived = self._probes[nonce] = asyncio.get_running_loop().create_future()
        try:
            payload = pubsub.encode(_PROBE_EVENT, {"nonce": nonce})
            await pubsub.publish_many(self._redis, [(self._probe_topic, payload)])
            await asyncio.wait_for(arrived, _PROBE_TIMEOUT)
        except TimeoutError:
            raise AppError.unavailable(
                "fanout_down",
                f"the fan-out subscription delivered nothing within {_PROBE_TIMEOUT} s",
            ) from None
        finally:
            self._probes.pop(nonce, None)
        return {"topics": len(self._watchers), "dropped": self.dropped}

    async def _subscribe_all(self) -> PubSub:
        connection = self._redis.pubsub(ignore_subscribe_messages=True)
        channels = [pubsub.channel_name(t) for t in [self._probe_topic, *self._watchers]]
        await connection.subscribe(*channels)
        # redis-py reconnects and resubscribes by itself when it can: hear of that too.
        assert connection.connection is not None, "subscribed, so connected"
        connection.connection.register_connect_callback(self._reconnected)
        return connection

    def _reconnected(self, connection: object) -> None:
        self._rebuilt()

    def _rebuilt(self) -> None:
        self._subscription += 1
        self._proven.clear()
        if self._on_rebuilt is not None:
            self._on_rebuilt()

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe_all()
                    self._rebuilt()
                async for message in self._pubsub.listen():
                    await self._dispatch(message)
                    delay = 0.05
            except (RedisError, OSError) as exc:
                log.warning("fan-out subscription lost (%s); resubscribing in %.2f s", exc, delay)
                await self._discard_subscription()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_DELAY)

    async def _discard_subscription(self) -> None:
        broken, self._pubsub = self._pubsub, None
        if broken is not None:
            with contextlib.suppress(RedisError, OSError):
                await broken.aclose()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        topic = message["channel"].decode().removeprefix(pubsub.CHANNEL_PREFIX)
        try:
            event, data = pubsub.decode(message["data"])
        except ValueError:
            self.dropped += 1
            log.error("dropped an undecodable message on %s", topic)
            return
        if topic == self._probe_topic:
            arrived = self._probes.get(data.get("nonce", ""))
            if arrived is not None and not arrived.done():
                arrived.set_result(None)
            return
        await self._deliver(topic, event, data)
