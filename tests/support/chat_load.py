"""A steady chat load for fault tests: senders that retry until acked and a
listener that resumes with ``since_seq``, each over a real Socket.IO client
that reconnects — to the next gateway of its list — whenever its connection
drops, with no help from the test.

Every send keeps its ``client_msg_id`` across retries, so a retried send is
one message; every received ``message:new`` is kept with its arrival time,
so the test can count what was lost, repeated or reordered and when the
load recovered from a fault.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

from tests.support.tenants import Account

__all__ = ["Acked", "ChatLoad", "Listener", "Sender"]

#: Pause between two sends of one sender: a steady trickle, not a flood.
PACE_SECONDS = 0.02
#: Most messages one sender sends in a test (the load is bounded in count too).
MOST_SENDS = 2000
#: Pause before a retry or a reconnect.
BACKOFF_SECONDS = 0.1
#: Deadline of one socket call.
CALL_SECONDS = 10.0


@dataclass(frozen=True)
class Acked:
    """One acknowledged send: when it was first tried and when it was acked."""

    client_msg_id: str
    id: str
    seq: int
    sent_at: float
    acked_at: float


class _Socket:
    """A Socket.IO client in a tenant that reconnects on demand, trying each
    of ``urls`` in turn; it records every event and wakes on a disconnect."""

    def __init__(self, urls: list[str], who: Account, tenant_id: str) -> None:
        self.urls = urls
        self.who = who
        self.tenant_id = tenant_id
        self.reconnects = 0
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._next_url = 0
        self._gone = asyncio.Event()  # set when the current connection dropped
        self.client = self._client()

    def _client(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        client.on("*", self._record)
        client.on("disconnect", self._dropped)
        return client

    async def _record(self, event: str, data: Any) -> None:
        await self.events.put((event, data))

    async def _dropped(self, *reason: Any) -> None:
        self._gone.set()
        await self.events.put(("disconnect", None))

    async def connect(self) -> None:
        """Connect to the current url, moving on to the next one until one answers."""
        auth = {"token": self.who.token, "tenant_id": self.tenant_id}
        self._gone.clear()
        while True:
            url = self.urls[self._next_url % len(self.urls)]
            try:
                await self.client.connect(
                    url, transports=["websocket"], wait_timeout=CALL_SECONDS, auth=auth
                )
                return
            except socketio.exceptions.ConnectionError:
                self._next_url += 1
                self.client = self._client()
                await asyncio.sleep(BACKOFF_SECONDS)

    async def reconnect(self) -> None:
        self.reconnects += 1
        await self.close()
        self.client = self._client()
        await self.connect()

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The ack, or None when the call timed out or the socket is gone
        (python-socketio leaves a call pending when its connection drops:
        the drop ends the wait here)."""
        if not self.client.connected:
            return None
        call = asyncio.ensure_future(self.client.call(event, data, timeout=CALL_SECONDS))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait([call, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not call.done():
            call.cancel()
            return None
        try:
            return call.result()
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
            return None

    async def close(self) -> None:
        await self.client.disconnect()


class Sender:
    """Sends ``name-0``, ``name-1``, ... into a conversation until stopped;
    each send is retried (same ``client_msg_id``) until it is acked."""

    def __init__(self, name: str, socket: _Socket, conversation_id: str) -> None:
        self.name = name
        self.socket = socket
        self.conversation_id = conversation_id
        self.acked: list[Acked] = []
        self.errors: list[dict[str, Any]] = []

    async def run(self, stop: asyncio.Event) -> None:
        for n in range(MOST_SENDS):
            if stop.is_set():
                return
            self.acked.append(await self._send_until_acked(f"{self.name}-{n}"))
            await asyncio.sleep(PACE_SECONDS)

    async def _send_until_acked(self, client_msg_id: str) -> Acked:
        payload = {
            "conversation_id": self.conversation_id,
            "body": f"load {client_msg_id}",
            "client_msg_id": client_msg_id,
        }
        sent_at = time.monotonic()
        while True:
            ack = await self.socket.call("message:send", payload)
            if ack is not None and "data" in ack:
                data = ack["data"]
                return Acked(client_msg_id, data["id"], data["seq"], sent_at, time.monotonic())
            if ack is not None:
                assert ack["error"]["retriable"], f"expected a retriable error, got {ack}"
                self.errors.append(ack["error"])
            if not self.socket.client.connected:
                await self.socket.reconnect()
            await asyncio.sleep(BACKOFF_SECONDS)


class Listener:
    """Follows a conversation from ``since_seq``: every ``message:new`` it
    receives, replayed by a join or live, with the time it arrived; a dropped
    connection is reconnected and rejoined from the last seq it holds."""

    def __init__(self, socket: _Socket, conversation_id: str, since_seq: int) -> None:
        self.socket = socket
        self.conversation_id = conversation_id
        self.seqs: list[int] = []
        self.arrivals: list[float] = []
        self.joins = 0
        self._since = since_seq
        self._grew = asyncio.Condition()

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self._since

    async def run(self) -> None:
        await self._join()
        while True:
            event, data = await self.socket.events.get()
            if event == "disconnect":
                await self.socket.reconnect()
                await self._join()
            elif event == "message:new" and data["conversation_id"] == self.conversation_id:
                await self._received(data["seq"])

    async def _join(self) -> None:
        while True:
            join = {"conversation_id": self.conversation_id, "since_seq": self.last_seq}
            ack = await self.socket.call("conversation:join", join)
            if ack is not None and "data" in ack:
                break
            if not self.socket.client.connected:
                await self.socket.reconnect()
            await asyncio.sleep(BACKOFF_SECONDS)
        self.joins += 1
        for event in ack["data"]["events"]:
            if event["event"] == "message:new":
                await self._received(event["seq"])

    async def _received(self, seq: int) -> None:
        async with self._grew:
            self.seqs.append(seq)
            self.arrivals.append(time.monotonic())
            self._grew.notify_all()

    async def until(self, seq: int) -> None:
        """Until it received seq ``seq``."""
        async with self._grew:
            await self._grew.wait_for(lambda: self.last_seq >= seq)


@dataclass
class ChatLoad:
    """Senders and a listener over one conversation, running until ``stop``.

    ``sender_urls[i]`` lists the gateways sender ``i`` tries, in order;
    ``listener_urls`` the listener's.
    """

    conversation_id: str
    tenant_id: str
    people: list[Account]
    sender_urls: list[list[str]]
    listener_urls: list[str]
    since_seq: int
    senders: list[Sender] = field(default_factory=list)
    listener: Listener | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        for n, urls in enumerate(self.sender_urls):
            socket = _Socket(urls, self.people[n % len(self.people)], self.tenant_id)
            await socket.connect()
            self.senders.append(Sender(f"s{n}", socket, self.conversation_id))
        listener_socket = _Socket(self.listener_urls, self.people[0], self.tenant_id)
        await listener_socket.connect()
        self.listener = Listener(listener_socket, self.conversation_id, self.since_seq)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(s.run(self._stop)) for s in self.senders]
        self._tasks.append(loop.create_task(self.listener.run()))

    async def acks_after(self, moment: float, count: int = 1) -> None:
        """Until every sender has ``count`` sends tried after ``moment`` acked."""
        while any(sum(a.sent_at > moment for a in s.acked) < count for s in self.senders):
            self._raise_if_failed()
            await asyncio.sleep(BACKOFF_SECONDS)

    async def drain(self) -> None:
        """Stop sending, then wait until the listener has every acked message."""
        self._stop.set()
        await asyncio.gather(*self._tasks[:-1])
        assert self.listener is not None
        await self.listener.until(max(a.seq for a in self.acked()))

    def acked(self) -> list[Acked]:
        return [a for s in self.senders for a in s.acked]

    def _raise_if_failed(self) -> None:
        for task in self._tasks:
            if task.done():
                task.result()  # a failed task's error, raised here

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sender in self.senders:
            await sender.socket.close()
        if self.listener is not None:
            await self.listener.socket.close()
