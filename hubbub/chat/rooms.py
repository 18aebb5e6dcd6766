"""This gateway's conversation rooms: which local sockets get which conversation's
events, joined without a gap or a duplicate.

A join runs in three steps. :meth:`ConversationRooms.begin_join` marks the
socket *joining* and makes sure the gateway's bus subscription to the
conversation is live (a probe round trip through the same Redis connection
proves the SUBSCRIBE was processed); from then on every event of the
conversation that reaches this gateway is buffered for the socket. The
caller reads the backlog after ``since_seq`` from Postgres and acks it.
:meth:`ConversationRooms.finish_join` then, after the ack has been queued,
sends the buffered events with a seq above the last one replayed and puts
the socket in the live room. A late publish of an event the backlog already
held (committed before the read, published after) is dropped by the
socket's *floor*, kept until an event above it passes.

Delivery and flushing take one lock, so a socket's events leave in the
order the conversation's owner published them. Events without a ``seq``
(``read`` marks) are not part of the stream and always pass.

**Gap repair.** The gateway keeps each live conversation's *head*, the last
seq it delivered to the room. An event whose seq is above head + 1 means
publications were lost on the bus (a dropped subscription, a shard killed
between commit and publish): the missing range is read from Postgres and
delivered first, under the same lock, so the room gets it in order and once.
A joining socket's buffered events are repaired the same way from its floor.
An event at or below the head was delivered already and is dropped. Only the
last events before a silence cannot be noticed this way; clients still see
seqs and can fetch ``GET .../events?after_seq=``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import asyncpg
from redis.asyncio import Redis

from hubbub.chat import reads
from hubbub.chat.events import channel
from hubbub.realtime.fanout import Fanout
from hubbub.realtime.server import Realtime
from hubbub.storage.database import Database

__all__ = ["UNECHOED", "ConversationRooms", "room"]

log = logging.getLogger(__name__)

_Buffered = list[tuple[str, dict[str, Any]]]

#: Events not delivered to the sockets of the user their ``user_id`` names
#: (that user's own typing indicator).
UNECHOED = frozenset({"typing"})


def room(conversation_id: str) -> str:
    """The local Socket.IO room of a conversation's live sockets."""
    return f"chat:{conversation_id}"


class ConversationRooms:
    """Owns: this gateway's conversation subscriptions, joining sockets' buffers,
    replay floors and which user each joined socket is.

    Concurrency: one event loop; delivery, repairs and flushes hold ``_lock``
    (a repair's Postgres read holds up this gateway's bus, in order).
    Failure: a socket gone mid-join is forgotten; events lost on the bus are
    read back from Postgres at the next event's seq gap (``repaired`` counts
    them); if that read fails the gap is left for clients to fetch
    (``repair_failures``).
    """

    def __init__(self, realtime: Realtime, redis: Redis, database: Database) -> None:
        self._realtime = realtime
        self._database = database
        self.fanout = Fanout(redis, self._deliver)
        self._lock = asyncio.Lock()
        self._joined: dict[str, set[str]] = {}  # sid -> conversation ids (joining or live)
        self._sockets: Counter[str] = Counter()  # conversation id -> sockets joined to it
        self._users: dict[str, str] = {}  # sid -> user id
        self._joining: dict[tuple[str, str], _Buffered] = {}
        self._floors: dict[str, dict[str, int]] = {}  # conversation -> {sid: last seq sent}
        self._heads: dict[str, int] = {}  # conversation -> last seq delivered to its room
        self._tenants: dict[str, str] = {}  # conversation -> tenant (for repair reads)
        self.repaired = 0  # events read back from Postgres to fill a bus gap
        self.repair_failures = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.fanout.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.fanout.close()

    async def begin_join(
        self, sid: str, user_id: str, conversation_id: str, tenant_id: str
    ) -> None:
        """Start buffering the conversation's events for ``sid``; subscribed on return."""
        await self._drop(sid, conversation_id)  # a rejoin replays from its own since_seq
        self._tenants[conversation_id] = tenant_id
        self._joining[(sid, conversation_id)] = []
        self._joined.setdefault(sid, set()).add(conversation_id)
        self._sockets[conversation_id] += 1
        self._users[sid] = user_id
        await self.fanout.subscribe(channel(conversation_id))

    def finish_join(self, sid: str, conversation_id: str, floor: int) -> None:
        """Go live after the ack: buffered events above ``floor``, then the room."""
        task = asyncio.get_running_loop().create_task(self._go_live(sid, conversation_id, floor))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def abort_join(self, sid: str, conversation_id: str) -> None:
        await self._drop(sid, conversation_id)

    def is_joined(self, sid: str, conversation_id: str) -> bool:
        """Whether ``sid`` joined the conversation (membership checked at the join)."""
        return conversation_id in self._joined.get(sid, ())

    async def leave(self, sid: str, conversation_id: str) -> bool:
        """Stop delivering the conversation to ``sid``; whether it was joined."""
        joined = conversation_id in self._joined.get(sid, ())
        await self._drop(sid, conversation_id)
        return joined

    async def forget(self, sid: str) -> None:
        """The socket disconnected: drop it from every conversation."""
        for conversation_id in list(self._joined.get(sid, ())):
            await self._drop(sid, conversation_id)
        self._joined.pop(sid, None)
        self._users.pop(sid, None)

    async def _go_live(self, sid: str, conversation_id: str, floor: int) -> None:
        # Created by the join handler: it first runs after the handler's ack was
        # queued on the socket, so the buffered events follow the ack.
        async with self._lock:
            buffered = self._joining.pop((sid, conversation_id), None)
            if buffered is None:  # left or disconnected meanwhile
                return
            sio = self._realtime.sio
            for event, data in buffered:
                seq = data.get("seq")
                if isinstance(seq, int):
                    if seq <= floor:
                        continue
                    for missed, missed_data in await self._missed(conversation_id, floor, seq):
                        await sio.emit(missed, missed_data, to=sid, ignore_queue=True)
                    floor = seq
                await sio.emit(event, data, to=sid, ignore_queue=True)
            self._floors.setdefault(conversation_id, {})[sid] = floor
            self._heads.setdefault(conversation_id, floor)
            await sio.enter_room(sid, room(conversation_id))

    async def _drop(self, sid: str, conversation_id: str) -> None:
        conversations = self._joined.get(sid)
        if conversations is None or conversation_id not in conversations:
            return
        conversations.discard(conversation_id)
        self._sockets[conversation_id] -= 1
        self._joining.pop((sid, conversation_id), None)
        floors = self._floors.get(conversation_id, {})
        floors.pop(sid, None)
        if not floors:
            self._floors.pop(conversation_id, None)
        if not self._sockets[conversation_id]:
            del self._sockets[conversation_id]
            self._heads.pop(conversation_id, None)  # unsubscribed: the stream is lost here
            self._tenants.pop(conversation_id, None)
        sio = self._realtime.sio
        if sio.manager.is_connected(sid, "/"):  # a gone socket left every room already
            # (and its Redis-backed manager would publish a leave for it to every gateway)
            await sio.leave_room(sid, room(conversation_id))
        await self.fanout.unwatch(channel(conversation_id))

    async def _deliver(self, topic: str, event: str, data: dict[str, Any]) -> None:
        conversation_id = topic.removeprefix("conversation:")
        async with self._lock:
            delivered = await self._in_order(conversation_id, event, data)
            for name, payload in delivered:
                await self._emit(conversation_id, name, payload)
        for name, payload in delivered:
            if name == "member:left" and isinstance(payload.get("user_id"), str):
                await self._evict(conversation_id, payload["user_id"])
            elif name == "conversation:deleted":
                await self._close(conversation_id)

    async def _in_order(self, conversation_id: str, event: str, data: dict[str, Any]) -> _Buffered:
        """The events to deliver for this one: none if the room had it already,
        the missing range first if it leaves a gap after the room's head."""
        seq = data.get("seq")
        head = self._heads.get(conversation_id)
        if not isinstance(seq, int) or head is None:
            if isinstance(seq, int) and conversation_id in self._sockets:
                self._heads[conversation_id] = seq
            return [(event, data)]
        if seq <= head:
            return []
        self._heads[conversation_id] = seq
        return [*await self._missed(conversation_id, head, seq), (event, data)]

    async def _missed(self, conversation_id: str, after: int, before: int) -> _Buffered:
        """Stream events ``after`` < seq < ``before`` from Postgres (none if no gap)."""
        if before <= after + 1:
            return []
        tenant_id = self._tenants.get(conversation_id)
        try:
            async with self._database.tenant(tenant_id) as conn:
                rows = await reads.stream_after(conn, conversation_id, after, before - after - 1)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            self.repair_failures += 1
            log.error(
                "could not repair seqs %d..%d of %s: %s",
                after + 1,
                before - 1,
                conversation_id,
                exc,
            )
            return []
        self.repaired += len(rows)
        log.warning(
            "repaired seqs %d..%d of %s from Postgres (lost on the bus)",
            after + 1,
            before - 1,
            conversation_id,
        )
        return [(row["event"], row["data"]) for row in rows]

    async def _emit(self, conversation_id: str, event: str, data: dict[str, Any]) -> None:
        for (_sid, joining), buffered in self._joining.items():
            if joining == conversation_id:
                buffered.append((event, data))
        skip = self._skipped(conversation_id, data.get("seq"))
        if event in UNECHOED:
            skip += self._sockets_of(conversation_id, data.get("user_id"))
        await self._realtime.broadcast(room(conversation_id), event, data, skip=skip)

    def _skipped(self, conversation_id: str, seq: Any) -> list[str]:
        """Fresh sockets that have this event already; forget floors passed."""
        floors = self._floors.get(conversation_id)
        if not floors or not isinstance(seq, int):
            return []
        skip = [sid for sid, floor in floors.items() if floor >= seq]
        for sid in [sid for sid, floor in floors.items() if floor < seq]:
            del floors[sid]
        if not floors:
            del self._floors[conversation_id]
        return skip

    def _sockets_of(self, conversation_id: str, user_id: Any) -> list[str]:
        participants = self._realtime.sio.manager.get_participants("/", room(conversation_id))
        return [sid for sid, _ in participants if self._users.get(sid) == user_id]

    async def _close(self, conversation_id: str) -> None:
        """The conversation was deleted: no socket here gets its events any more."""
        for sid, conversations in list(self._joined.items()):
            if conversation_id in conversations:
                await self._drop(sid, conversation_id)

    async def _evict(self, conversation_id: str, user_id: str) -> None:
        """A member left: their sockets here stop getting the conversation."""
        for sid, user in list(self._users.items()):
            if user == user_id and conversation_id in self._joined.get(sid, ()):
                await self._drop(sid, conversation_id)
