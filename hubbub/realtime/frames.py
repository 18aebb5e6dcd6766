"""Direct websocket writes: a broadcast frame encoded once, written to every socket.

python-socketio sends each packet through a per-socket queue drained by a
writer task, and a room emit creates one task per recipient: at tens of
thousands of deliveries a second the event loop spends its time switching
tasks. Here, once an Engine.IO socket is on a websocket, a packet is written
straight to the connection's transport as a ready-made websocket frame, so a
room broadcast costs one encode plus one ``transport.write`` per recipient.

Order is kept by one rule: a packet goes direct only when nothing is queued
for the socket or held by its writer task; otherwise it queues behind them.
Engine.IO's pings always take the queue, which keeps the writer task (and
its liveness timeout) running as python-engineio expects. Frames are never
compressed, so frames written by either path stay independent of each other.

A socket whose unsent bytes pass ``limit`` reads too slowly to keep up: it
is cut off, and its client resumes with ``since_seq`` after reconnecting.

A client's pong waits behind the packets it sent before it, which are
handled one at a time. So every packet read from a websocket counts as the
pong of an outstanding ping (the next ping follows as usual): a client whose
sends are still being worked through is alive, and is neither timed out for
a late pong nor closed by an idle writer task, which would leave its
remaining sends unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import engineio
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket

__all__ = ["DirectServer", "PacketQueue", "frame"]

log = logging.getLogger(__name__)

_FIN_TEXT, _FIN_BINARY = 0x81, 0x82
_UPGRADE = str(eio_packet.UPGRADE)  # the client's last packet before it moves


def frame(payload: str | bytes) -> bytes:
    """An unmasked, final websocket frame (server to client) carrying ``payload``."""
    if isinstance(payload, str):
        opcode, data = _FIN_TEXT, payload.encode()
    else:
        opcode, data = _FIN_BINARY, payload
    size = len(data)
    if size < 126:
        return struct.pack("!BB", opcode, size) + data
    if size < 1 << 16:
        return struct.pack("!BBH", opcode, 126, size) + data
    return struct.pack("!BBQ", opcode, 127, size) + data


class PacketQueue(asyncio.Queue[Any]):
    """An Engine.IO socket's packet queue that writes straight to its websocket.

    Owns: the socket's transport once it is on a websocket, and the count of
    packets its writer task took but has not written yet. Concurrency: one
    event loop; ``write`` never awaits.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._held = 0  # taken by the writer task, not yet written

    def go_direct(self, transport: asyncio.Transport) -> None:
        """The socket moves to a websocket whose writer task has not started:
        write what waits, then every packet that can go direct."""
        self._transport = transport
        while not self.empty():
            item = super().get_nowait()
            self.task_done()
            if item is None:  # closed already: let the writer task stop at once
                super().put_nowait(None)
                return
            self._send(frame(item.encode()))

    @property
    def direct(self) -> bool:
        """Whether the socket is on a websocket that packets are written to directly."""
        return self._transport is not None

    def write(self, data: bytes) -> bool:
        """Write a ready frame now if that keeps the socket's order; whether it did."""
        if self._transport is None or self._held or not self.empty():
            return False
        self._send(data)
        return True

    def written_by_writer(self, data: bytes) -> None:
        """The writer task's packet, in its turn."""
        self._held -= 1
        self._send(data)

    def put_nowait(self, item: Any) -> None:
        # ``None`` stops the writer task and pings keep it alive: both queue.
        direct = isinstance(item, eio_packet.Packet) and item.packet_type != eio_packet.PING
        if not (direct and self.write(frame(item.encode()))):
            super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None and self._transport is not None:
            self._held += 1
        return item

    def _send(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._limit:
            log.warning("a socket fell %d bytes behind; disconnecting it", self._limit)
            transport.abort()


class _DirectWebSocket(WebSocket):
    """python-engineio's aiohttp websocket, uncompressed, that moves the
    socket's packets to direct writes before its writer task starts."""

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self._engine_socket = handler.__self__  # the Engine.IO socket this serves
        self._queue: PacketQueue | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        if not self._engine_socket.connected:  # on a websocket from its first packet
            self._go_direct()
        await self.handler(self)
        return self._sock

    async def send(self, message: str | bytes) -> None:
        if self._queue is not None:
            self._queue.written_by_writer(frame(message))
        else:  # the upgrade handshake's probe reply
            await super().send(message)

    async def wait(self) -> Any:
        data = await super().wait()
        if data == _UPGRADE and self._queue is None:
            self._go_direct()  # python-engineio starts the writer task next
        if data is not None:
            self._engine_socket.schedule_ping()  # heard from: as good as its pong
        return data

    def _go_direct(self) -> None:
        queue = self._engine_socket.queue
        transport = self.environ["aiohttp.request"].transport
        if isinstance(queue, PacketQueue) and transport is not None:
            queue.go_direct(transport)
            self._queue = queue


class _DirectEngine(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server whose websocket sockets write directly."""

    def __init__(self, *, socket_buffer_limit: int, **options: Any) -> None:
        super().__init__(**options)
        self._socket_buffer_limit = socket_buffer_limit
        self._async = {**self._async, "websocket": _DirectWebSocket}

    def create_queue(self, *args: Any, **kwargs: Any) -> PacketQueue:
        return PacketQueue(self._socket_buffer_limit)


class DirectServer(socketio.AsyncServer):  # type: ignore[misc]
    """A python-socketio server on :class:`_DirectEngine`."""

    def __init__(self, *, socket_buffer_limit: int, **options: Any) -> None:
        self._socket_buffer_limit = socket_buffer_limit
        super().__init__(**options)

    def _engineio_server_class(self) -> Any:
        limit = self._socket_buffer_limit

        def engine(**options: Any) -> _DirectEngine:
            return _DirectEngine(socket_buffer_limit=limit, **options)

        return engine
