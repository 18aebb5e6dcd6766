"""The Socket.IO handshake: who is connecting.

An :class:`Authenticator` turns the connection's ``auth`` payload and
environ into a :class:`Principal`, or raises an AppError that refuses the
connection with that error's code. The identity layer plugs its
authenticator in here; until one is configured, sockets are anonymous.

The handshake has a deadline (:class:`ConnectDeadline`): an Engine.IO
session that has not connected to a Socket.IO namespace within
``HUBBUB_SOCKET_CONNECT_SECONDS`` — it never sent CONNECT, or its CONNECT
was refused — is closed, so an unauthenticated client cannot hold a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

__all__ = ["ANONYMOUS", "Authenticator", "ConnectDeadline", "Principal", "anonymous"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity behind a socket or a request."""

    user_id: str | None = None
    session_id: str | None = None  # the login session a token belongs to
    tenant_id: str | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Principal()

#: ``(app, environ, auth) -> Principal``: ``app`` is the gateway the socket
#: connects to; raise AppError to refuse the connection.
Authenticator = Callable[[web.Application, Mapping[str, Any], Any], Awaitable[Principal]]


async def anonymous(app: web.Application, environ: Mapping[str, Any], auth: Any) -> Principal:
    """The authenticator of a deployment without identity: everyone is anonymous."""
    return ANONYMOUS


class ConnectDeadline:
    """Owns: a timer per new Engine.IO session of ``sio``, and the tasks that
    close the sessions still not connected when their timer fires.

    Concurrency: the event loop; a timer is one ``call_later`` handle, so an
    open costs no task. Failure: a close that fails is logged (the session
    then ends at its ping timeout). :meth:`close` cancels what is pending.
    """

    def __init__(self, sio: socketio.AsyncServer, seconds: float) -> None:
        self._sio = sio
        self._seconds = seconds
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        opened = sio.eio.handlers["connect"]  # python-socketio's own bookkeeping

        async def on_open(eio_sid: str, environ: Mapping[str, Any]) -> Any:
            self._timers[eio_sid] = asyncio.get_running_loop().call_later(
                self._seconds, self._expire, eio_sid
            )
            return await opened(eio_sid, environ)

        sio.eio.on("connect", on_open)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._closing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _expire(self, eio_sid: str) -> None:
        self._timers.pop(eio_sid, None)
        if eio_sid not in self._sio.eio.sockets or self._connected(eio_sid):
            return
        task = asyncio.create_task(self._drop(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _connected(self, eio_sid: str) -> bool:
        """Connected (or connecting) to some namespace: it sent a CONNECT that
        was not refused."""
        manager = self._sio.manager
        return any(
            manager.sid_from_eio_sid(eio_sid, namespace) for namespace in manager.get_namespaces()
        )

    async def _drop(self, eio_sid: str) -> None:
        """Close the session, then its transport: Engine.IO's close only asks
        the client to hang up, and this client is not to be trusted to."""
        log.info(
            "closing Engine.IO session %s: no Socket.IO connect within %ss", eio_sid, self._seconds
        )
        socket = self._sio.eio.sockets.get(eio_sid)
        try:
            await self._sio.eio.disconnect(eio_sid)
        except Exception:  # the session's ping timeout still ends it
            log.exception("could not close Engine.IO session %s", eio_sid)
        if socket is not None:
            socket.queue.put_nowait(None)  # ends its writer, which closes the websocket
