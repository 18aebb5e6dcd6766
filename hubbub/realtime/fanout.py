"""This gateway's one fan-out bus: a single Redis subscription for committed
events, routed by topic to the gateway's local consumers.

Every committed domain event a gateway hears arrives on one Redis pub/sub
connection (python-socketio's manager holds its own, for emits between
gateways). The gateway subscribes to a topic's channel while at least one
local consumer watches it, and hands each event to the consumer *routed* to
its topic: an exact topic (``auth:revocations``), a kind of topic (every
``conversation:`` topic, every ``job:`` topic), or else the default (the
Socket.IO room named after the topic, ``realtime/server.py``). A consumer
must not wait on anything slow in its route: a seq stream's repair runs in
the stream's own task (``seq_stream.py``), so one stream's slow read never
holds up another's delivery, nor revocations or tenant evictions.

If the subscription breaks it is rebuilt with every watched channel (by
redis-py's own reconnect, or here if that gives up); events lost meanwhile
are repaired by receivers from their seq gaps, and hooks given to
:meth:`Fanout.on_rebuilt` hear of the rebuild so a receiver without seqs can
drop what it trusted. A probe round trip through Redis tells readiness
whether the subscription really delivers, and :meth:`Fanout.subscribe`
whether a topic's new SUBSCRIBE took effect (once per topic and
subscription: later subscribers of a topic already proven pay no round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from hubbub.errors import AppError
from hubbub.metrics import BUS_RECONNECTS, DELIVERY_LAG
from hubbub.storage import pubsub

__all__ = ["Deliver", "Fanout", "kind_of"]

log = logging.getLogger(__name__)

#: ``(topic, event, data)``: hand one committed event to a local consumer.
Deliver = Callable[[str, str, dict[str, Any]], Awaitable[None]]

_PROBE_EVENT = "hubbub:probe"
_RECONNECT_MAX_DELAY = 5.0
_PROBE_TIMEOUT = 2.0


def kind_of(topic: str) -> str:
    """A topic's kind: its name up to and with the first ``:`` (``"job:"``),
    or ``""`` for a topic without one."""
    colon = topic.find(":")
    return topic[: colon + 1]


class Fanout:
    """Owns: this gateway's one Redis subscription for committed events, the
    count of watchers per topic and the route of each topic to its consumer.

    Concurrency: one event loop; one reader task owned by this object hands
    events to the routes one at a time, in the order Redis delivers them.
    Durability: none (Redis pub/sub is at most once); receivers repair by seq.
    Failure: a broken subscription is rebuilt with backoff and every watched
    channel; ``probe`` fails until it delivers again. Undecodable messages are
    counted in ``dropped``, not raised.
    """

    def __init__(self, redis: Redis, default: Deliver) -> None:
        self._redis = redis
        self._default = default
        self._topics: dict[str, Deliver] = {}
        self._kinds: dict[str, Deliver] = {}
        self._rebuilt_hooks: list[Callable[[], None]] = []
        self._watchers: Counter[str] = Counter()
        self._proven: set[str] = set()  # watched topics known to deliver
        self._subscription = 0  # counts rebuilds: a proof holds for one subscription
        self._probe_topic = f"probe:{uuid.uuid4().hex}"
        self._probes: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self.dropped = 0

    def route(self, topic: str, deliver: Deliver) -> None:
        """Hand ``topic``'s events to ``deliver``; a topic ending in ``:`` is a
        kind and routes every topic of that kind (an exact topic wins)."""
        routes = self._kinds if topic.endswith(":") else self._topics
        assert topic not in routes, f"expected one route per topic, {topic!r} has one"
        routes[topic] = deliver

    def on_rebuilt(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` whenever the subscription was rebuilt (events may be lost)."""
        self._rebuilt_hooks.append(hook)

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
        """Whether events published now reach the routes (as far as this end knows)."""
        connection = None if self._pubsub is None else self._pubsub.connection
        return connection is not None and connection.is_connected

    def watches(self, topic: str) -> bool:
        return topic in self._watchers

    async def watch(self, topic: str) -> None:
        """Receive ``topic``'s events from now on (reference-counted)."""
        self._watchers[topic] += 1
        if self._watchers[topic] == 1 and self._pubsub is not None:
            await self._pubsub.subscribe(pubsub.channel_name(topic))

    async def subscribe(self, topic: str) -> None:
        """Watch ``topic``; on return its events are known to arrive."""
        await self.watch(topic)
        await self.prove(topic)

    async def prove(self, topic: str) -> None:
        """Return once ``topic``'s events are known to arrive: a probe round trip
        proves it, unless one did for this topic and subscription already."""
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

    def check(self, *topics: str) -> Callable[[], Awaitable[dict[str, Any]]]:
        """A readiness check of one consumer's standing ``topics`` on this bus:
        it fails unless the subscription is up and watches them (no round trip;
        the ``fanout`` check's probe proves the subscription delivers)."""

        async def check() -> dict[str, Any]:
            missing = [t for t in topics if t not in self._watchers]
            if not self.subscribed or missing:
                raise AppError.unavailable(
                    "fanout_down", f"the fan-out subscription is down or misses {missing}"
                )
            return {"topics": list(topics)}

        return check

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
        if self._subscription:  # the first subscription is no reconnect
            BUS_RECONNECTS.inc()
        self._subscription += 1
        self._proven.clear()
        for hook in self._rebuilt_hooks:
            hook()

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
        deliver = self._topics.get(topic) or self._kinds.get(kind_of(topic)) or self._default
        received = time.perf_counter()
        try:
            await deliver(topic, event, data)
        except Exception:  # one consumer's bug must not stop every other's events
            log.exception("delivering %s on %s failed", event, topic)
        DELIVERY_LAG.observe(time.perf_counter() - received)
