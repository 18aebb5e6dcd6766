"""The Socket.IO server of a gateway, its handshake and its rooms.

python-socketio serves ``/socket.io`` on the gateway's aiohttp app (websocket
first, long-polling as fallback) with a Redis-backed manager, so an emit on
one gateway reaches sockets on every gateway. Committed domain events take
the gateway's one bus instead (``fanout.py``), which this server owns: each
gateway subscribes only to the topics its own consumers watch; a topic no
capability routes for itself (a tenant's events, its presence) is written
to the local room named after it.

Handlers registered with :meth:`Realtime.on` receive a :class:`SocketContext`
and the event's payload, and return the ack's data or raise an AppError,
which becomes an error ack; one client's events are handled in the order it
sent them. A payload holding NUL, a lone surrogate or nesting too deep is
acked ``validation_failed`` before any handler sees it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.exceptions import SocketIsClosedError
from redis.asyncio import Redis

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.metrics import SOCKET_DELIVERIES, SOCKETS_CONNECTED
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.frames import DirectServer, PacketQueue, frame
from hubbub.realtime.handshake import Authenticator, ConnectDeadline, Principal
from hubbub.realtime.protocol import OrjsonJson, ack_error, ack_ok, check_payload
from hubbub.realtime.socketio_redis import SocketioRedisManager

__all__ = ["Realtime", "SocketContext", "SocketHandler", "session_room", "user_room"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SocketContext:
    """What a socket event handler knows: which socket, whose, and the server."""

    sid: str
    principal: Principal
    realtime: Realtime

    @property
    def app(self) -> web.Application:
        """The gateway's aiohttp application (its settings, router, database...)."""
        return self.realtime.app


SocketHandler = Callable[[SocketContext, Any], Awaitable[Any]]


def user_room(user_id: str) -> str:
    """The local room every socket of ``user_id`` joins when it connects."""
    return f"principal-user:{user_id}"


def session_room(session_id: str) -> str:
    """The local room every socket of login session ``session_id`` joins."""
    return f"principal-session:{session_id}"


class Realtime:
    """Owns: the Socket.IO server, this gateway's sockets and their topics,
    and the gateway's one fan-out bus (``fanout``).

    Concurrency: one event loop; one client's events run in order
    (``async_handlers=False``). Failure: a handler's AppError becomes an
    error ack; any other exception is logged and acked as ``internal_error``.
    """

    def __init__(
        self, app: web.Application, settings: Settings, redis: Redis, authenticate: Authenticator
    ) -> None:
        """Socket.IO served on ``app``, the gateway this server belongs to."""
        assert settings.redis_url is not None, "resolved Redis URL expected"
        manager = SocketioRedisManager(
            settings.redis_url, channel=f"hubbub-socketio:{settings.ray_namespace}"
        )
        self.sio = DirectServer(
            socket_buffer_limit=settings.socket_buffer_bytes,
            async_mode="aiohttp",
            client_manager=manager,
            json=OrjsonJson,
            async_handlers=False,
            cors_allowed_origins=_cors(settings.cors_origins),
            max_http_buffer_size=settings.max_body_bytes,
            transports=["websocket", "polling"],
        )
        self.connect_deadline = ConnectDeadline(self.sio, settings.socket_connect_seconds)
        self.fanout = Fanout(redis, self._deliver)
        self._authenticate = authenticate
        self.app = app
        self._topics: dict[str, set[str]] = {}
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self._disconnect_hooks: list[Callable[[str], Awaitable[None]]] = []
        self._connect_hooks: list[Callable[[str, Principal], Awaitable[None]]] = []
        self._event_hooks: list[Callable[[str], None]] = []
        self.sio.attach(app, socketio_path="socket.io")

    def on_disconnect(self, hook: Callable[[str], Awaitable[None]]) -> None:
        """Call ``hook(sid)`` when a socket of this gateway disconnects."""
        self._disconnect_hooks.append(hook)

    def on_connect(self, hook: Callable[[str, Principal], Awaitable[None]]) -> None:
        """Call ``hook(sid, principal)`` once a socket of this gateway is authenticated."""
        self._connect_hooks.append(hook)

    def on_event(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(sid)`` (synchronously, so keep it cheap) at every client event."""
        self._event_hooks.append(hook)

    def on(self, event: str, handler: SocketHandler) -> None:
        """Handle client event ``event``; its return value is the ack's data."""

        async def dispatch(sid: str, data: Any = None) -> dict[str, Any]:
            session = await self.sio.get_session(sid)
            context = SocketContext(sid, session["principal"], self)
            for hook in self._event_hooks:
                hook(sid)
            try:
                check_payload(data)
                return ack_ok(await handler(context, data))
            except AppError as error:
                return ack_error(error)
            except Exception:
                log.exception("socket event %r failed", event)
                return ack_error(AppError("internal_error", "the event failed", status=500))

        self.sio.on(event, dispatch)

    async def watch(self, sid: str, topic: str) -> None:
        """Deliver ``topic``'s committed events to socket ``sid``."""
        topics = self._topics.setdefault(sid, set())
        if topic in topics:
            return
        topics.add(topic)
        await self.sio.enter_room(sid, topic)
        await self.fanout.watch(topic)

    async def unwatch(self, sid: str, topic: str) -> None:
        topics = self._topics.get(sid, set())
        if topic not in topics:
            return
        topics.discard(topic)
        await self.sio.leave_room(sid, topic)
        await self.fanout.unwatch(topic)

    async def start(self) -> None:
        await self.fanout.start()

    async def close(self) -> None:
        await self.connect_deadline.close()
        await self.fanout.close()

    async def disconnect_room(
        self, room: str, event: str, data: dict[str, Any], *, sparing: str | None = None
    ) -> int:
        """Send ``event`` to this gateway's sockets in ``room`` (except those also
        in room ``sparing``), then disconnect them; how many there were."""
        spared = set() if sparing is None else set(self._local_sids(sparing))
        targets = [sid for sid in self._local_sids(room) if sid not in spared]
        for sid in targets:
            await self.sio.emit(event, data, to=sid, ignore_queue=True)
            await self.sio.disconnect(sid, ignore_queue=True)
        return len(targets)

    async def broadcast(
        self, room: str, event: str, data: Any, *, skip: Collection[str] = ()
    ) -> None:
        """Send ``event`` to this gateway's sockets in ``room`` but ``skip``,
        encoded once; a socket on a websocket gets the frame written directly."""
        text = "42" + OrjsonJson.dumps([event, data])  # Engine.IO message of a Socket.IO event
        ready = frame(text)
        written = 0
        for sid, eio_sid in list(self.sio.manager.get_participants("/", room)):
            socket = self.sio.eio.sockets.get(eio_sid)
            if sid in skip or socket is None or socket.closed:
                continue
            written += 1
            queue = socket.queue
            if isinstance(queue, PacketQueue) and queue.write(ready):
                continue
            with contextlib.suppress(SocketIsClosedError):  # it closed meanwhile
                await socket.send(eio_packet.Packet(eio_packet.MESSAGE, text[1:]))
        SOCKET_DELIVERIES.inc(written)

    @property
    def connections(self) -> int:
        return len(self._topics)

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        try:
            check_payload(auth, "auth")
            principal = await self._authenticate(self.app, environ, auth)
        except AppError as error:
            # The client's connect_error gets {message, data: {code, message, ...}}.
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, error.to_wire()
            ) from None
        await self.sio.save_session(sid, {"principal": principal})
        self._topics[sid] = set()
        SOCKETS_CONNECTED.inc()
        if principal.user_id is not None:
            await self.sio.enter_room(sid, user_room(principal.user_id))
        if principal.session_id is not None:
            await self.sio.enter_room(sid, session_room(principal.session_id))
        for hook in self._connect_hooks:
            try:
                await hook(sid, principal)
            except Exception:  # one capability's bookkeeping must not refuse the socket
                log.exception("a connect hook failed for socket %s", sid)

    async def _disconnect(self, sid: str, *args: Any) -> None:
        topics = self._topics.pop(sid, None)
        if topics is not None:  # None: never connected (refused at its handshake)
            SOCKETS_CONNECTED.dec()
        for topic in topics or ():
            await self.fanout.unwatch(topic)
        for hook in self._disconnect_hooks:
            try:
                await hook(sid)
            except Exception:  # one capability's cleanup must not skip the others'
                log.exception("a disconnect hook failed for socket %s", sid)

    def _local_sids(self, room: str) -> list[str]:
        return [sid for sid, _ in self.sio.manager.get_participants("/", room)]

    async def _deliver(self, topic: str, event: str, data: dict[str, Any]) -> None:
        await self.broadcast(topic, event, data)


def _cors(origins: tuple[str, ...]) -> str | list[str] | None:
    """None: same origin only ([] would switch python-engineio's check off)."""
    if "*" in origins:
        return "*"
    return list(origins) or None
