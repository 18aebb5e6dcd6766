"""This gateway's conversation rooms: which local sockets get which conversation's
events, joined without a gap or a duplicate.

Each conversation with sockets here is a :class:`~hubbub.realtime.seq_stream.SeqStream`
on the gateway's one bus: it delivers the conversation's events to its room
in seq order, once, and reads back from Postgres what the bus lost — in the
stream's own task, so a slow read holds up only that conversation.

A join runs in three steps. :meth:`ConversationRooms.begin_join` follows
the conversation's stream, so the gateway's bus subscription to it is live
on return (a probe round trip through the same Redis connection proves the
SUBSCRIBE was processed). The caller reads the backlog after ``since_seq``
from Postgres and acks it. :meth:`ConversationRooms.finish_join` then, after
the ack has been queued, joins the stream at the last seq replayed: in
stream order, the socket gets what the room was sent after that seq (read
back) and enters the live room. Events without a ``seq`` (``read`` marks,
typing) are not part of the stream: a socket gets those sent once it is in
the room.

When someone loses access to the tenant (removed, or the tenant deleted),
:meth:`ConversationRooms.cut_off` drops their sockets (everyone's) from
every conversation of that tenant at once, on every gateway
(``hubbub.tenancy.eviction``): their conversation membership rows stay, but
every read, join and send asks for tenant membership first.
"""

from __future__ import annotations

from typing import Any

from hubbub.chat import reads
from hubbub.chat.events import channel
from hubbub.realtime.seq_stream import Event, ReadAfter, SeqStreams
from hubbub.realtime.server import Realtime
from hubbub.storage.database import Database

__all__ = ["UNECHOED", "ConversationRooms", "room"]

#: Events not delivered to the sockets of the user their ``user_id`` names
#: (that user's own typing indicator).
UNECHOED = frozenset({"typing"})

#: Stream events read back from Postgres at a time.
_PAGE = 500


def room(conversation_id: str) -> str:
    """The local Socket.IO room of a conversation's live sockets."""
    return f"chat:{conversation_id}"


class ConversationRooms:
    """Owns: which conversations this gateway's sockets joined, which joins are
    still in flight, which user each joined socket is and which tenant each
    joined conversation is in (the streams own each conversation's head).

    Concurrency: one event loop; a conversation's events reach its room in
    its stream's order. Failure: a socket gone mid-join is forgotten; events
    lost on the bus are read back at the next event's seq gap (``repaired``
    counts them); if that read fails the gap is left for clients to fetch.
    """

    def __init__(self, realtime: Realtime, database: Database) -> None:
        self._realtime = realtime
        self._database = database
        self.fanout = realtime.fanout
        self.streams = SeqStreams(self.fanout, "conversation:", self._deliver)
        self._joined: dict[str, set[str]] = {}  # sid -> conversation ids (joining or live)
        self._joining: dict[tuple[str, str], object] = {}  # (sid, conversation) -> its join
        self._users: dict[str, str] = {}  # sid -> user id
        self._tenants: dict[str, str] = {}  # conversation id -> tenant id, while joined

    @property
    def repaired(self) -> int:
        """Events read back from Postgres to fill a bus gap or a joiner's."""
        return self.streams.stats.repaired

    async def close(self) -> None:
        await self.streams.close()

    async def begin_join(
        self, sid: str, user_id: str, conversation_id: str, tenant_id: str
    ) -> None:
        """Follow the conversation for ``sid``; subscribed on return."""
        await self._drop(sid, conversation_id)  # a rejoin replays from its own since_seq
        self._joining[(sid, conversation_id)] = object()
        self._joined.setdefault(sid, set()).add(conversation_id)
        self._users[sid] = user_id
        self._tenants[conversation_id] = tenant_id
        try:
            await self.streams.follow(
                channel(conversation_id), self._reader(conversation_id, tenant_id)
            )
        except BaseException:
            self._joined[sid].discard(conversation_id)
            self._joining.pop((sid, conversation_id), None)
            raise

    def finish_join(self, sid: str, conversation_id: str, floor: int) -> None:
        """Go live after the ack: what the room got after ``floor``, then the room."""
        stream = self.streams.get(channel(conversation_id))
        join = self._joining.get((sid, conversation_id))
        if stream is None or join is None:  # left or disconnected meanwhile
            return

        async def arrive(missed: list[Event]) -> None:
            await self._go_live(sid, conversation_id, join, missed)

        # Joined in a task the handler created: it runs after the ack was queued.
        stream.join(floor, arrive)

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

    async def cut_off(self, tenant_id: str, user_id: str | None) -> list[str]:
        """``user_id`` (None: everyone) lost access to the tenant: their sockets
        here leave its conversations; which sockets left one."""
        cut: list[str] = []
        for sid, conversations in list(self._joined.items()):
            if user_id is not None and self._users.get(sid) != user_id:
                continue
            lost = [c for c in conversations if self._tenants.get(c) == tenant_id]
            for conversation_id in lost:
                await self._drop(sid, conversation_id)
            if lost:
                cut.append(sid)
        return cut

    def _reader(self, conversation_id: str, tenant_id: str) -> ReadAfter:
        async def read_after(after: int, before: int) -> list[Event]:
            async with self._database.tenant(tenant_id) as conn:
                limit = min(before - after - 1, _PAGE)
                rows = await reads.stream_after(conn, conversation_id, after, limit)
            return [(row["event"], row["data"]) for row in rows]

        return read_after

    async def _go_live(
        self, sid: str, conversation_id: str, join: object, missed: list[Event]
    ) -> None:
        if self._joining.get((sid, conversation_id)) is not join:  # left, or joined anew
            return
        del self._joining[(sid, conversation_id)]
        sio = self._realtime.sio
        for event, data in missed:
            await sio.emit(event, data, to=sid, ignore_queue=True)
        await sio.enter_room(sid, room(conversation_id))

    async def _drop(self, sid: str, conversation_id: str) -> None:
        conversations = self._joined.get(sid)
        if conversations is None or conversation_id not in conversations:
            return
        conversations.discard(conversation_id)
        self._joining.pop((sid, conversation_id), None)
        sio = self._realtime.sio
        if sio.manager.is_connected(sid, "/"):  # a gone socket left every room already
            # (and its Redis-backed manager would publish a leave for it to every gateway)
            await sio.leave_room(sid, room(conversation_id))
        await self.streams.unfollow(channel(conversation_id))
        if self.streams.get(channel(conversation_id)) is None:
            self._tenants.pop(conversation_id, None)

    async def _deliver(self, topic: str, event: str, data: dict[str, Any]) -> None:
        """One of the conversation's events, in stream order, to its room."""
        conversation_id = topic.removeprefix("conversation:")
        skip = self._sockets_of(conversation_id, data.get("user_id")) if event in UNECHOED else ()
        await self._realtime.broadcast(room(conversation_id), event, data, skip=skip)
        if event == "member:left" and isinstance(data.get("user_id"), str):
            await self._evict(conversation_id, data["user_id"])
        elif event == "conversation:deleted":
            await self._close(conversation_id)

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
