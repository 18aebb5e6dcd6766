"""Socket.IO events of conversations (payloads in docs/events.md).

A socket acts in the tenant of its handshake (``auth: {token, tenant_id}``)
and must still be a member of it at every event (as the gateway's
:class:`~hubbub.tenancy.confirmed_members.ConfirmedMembers` knows it). ``conversation:join``
replays from Postgres what the socket missed after ``since_seq`` in its ack,
then live events follow without a gap or a duplicate (``rooms.py``).
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hubbub.chat import commands as do
from hubbub.chat import reads
from hubbub.chat.rooms import ConversationRooms
from hubbub.chat.send_limits import SEND_LIMITS
from hubbub.chat.wire import NewMessage, ReadMark
from hubbub.errors import AppError
from hubbub.realtime.protocol import parse_payload
from hubbub.realtime.server import SocketContext
from hubbub.services import DATABASE, ROUTER, SETTINGS
from hubbub.tenancy.confirmed_members import acting

__all__ = ["REPLAY_LIMIT", "ROOMS", "SOCKET_EVENTS"]

#: Most events a join replays; further behind, fetch ``GET .../events`` first.
REPLAY_LIMIT = 1000

ROOMS = web.AppKey("conversation_rooms", ConversationRooms)

Model = TypeVar("Model", bound=BaseModel)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Join(_Payload):
    conversation_id: UUID
    since_seq: int = Field(0, ge=0)


class _Ref(_Payload):
    conversation_id: UUID


class _Send(NewMessage):
    conversation_id: UUID


class _Read(ReadMark):
    conversation_id: UUID


async def join(context: SocketContext, data: Any) -> dict[str, Any]:
    """Replay what was missed after ``since_seq``; live events follow the ack."""
    payload = parse_payload(_Join, data)
    app, tenant_id, user = await acting(context)
    conversation_id = str(payload.conversation_id)
    await do.ask(app[ROUTER], tenant_id, conversation_id, do.Authorize(user))
    rooms = app[ROOMS]
    await rooms.begin_join(context.sid, user, conversation_id, tenant_id)
    try:
        await acting(context)  # a removal decided meanwhile found no socket to drop
        async with app[DATABASE].tenant(tenant_id) as conn:
            events, _ = await reads.events_after(
                conn, conversation_id, user, payload.since_seq, REPLAY_LIMIT + 1
            )
        if len(events) > REPLAY_LIMIT:
            raise AppError(
                "too_far_behind",
                f"more than {REPLAY_LIMIT} events since seq {payload.since_seq}: fetch "
                "GET /api/v1/conversations/{id}/events?after_seq= and join with a later since_seq",
                status=409,
            )
    except BaseException:
        await rooms.abort_join(context.sid, conversation_id)
        raise
    floor = events[-1]["seq"] if events else payload.since_seq
    rooms.finish_join(context.sid, conversation_id, floor)
    return {"conversation_id": conversation_id, "last_seq": floor, "events": events}


async def leave(context: SocketContext, data: Any) -> dict[str, Any]:
    """Stop receiving the conversation's events."""
    payload = parse_payload(_Ref, data)
    await context.app[ROOMS].leave(context.sid, str(payload.conversation_id))
    return {"conversation_id": str(payload.conversation_id)}


async def send_message(context: SocketContext, data: Any) -> dict[str, Any]:
    """Send a message; the ack ``{id, seq, created_at}`` comes after commit, or
    ``rate_limited`` past the socket's or the user's send limit."""
    payload = parse_payload(_Send, data)
    app, tenant_id, user = await acting(context)
    message = await do.send_message(
        app[ROUTER],
        tenant_id,
        payload.conversation_id,
        user,
        payload,
        app[SETTINGS].message_max_bytes,
        app[SEND_LIMITS],
        context.sid,
    )
    return {"id": message["id"], "seq": message["seq"], "created_at": message["created_at"]}


async def mark_read(context: SocketContext, data: Any) -> dict[str, Any]:
    """Move the read mark up to ``up_to_seq`` (never backwards)."""
    payload = parse_payload(_Read, data)
    app, tenant_id, user = await acting(context)
    return await do.mark_read(
        app[ROUTER], tenant_id, payload.conversation_id, user, payload.up_to_seq
    )


SOCKET_EVENTS = {
    "conversation:join": join,
    "conversation:leave": leave,
    "message:send": send_message,
    "read": mark_read,
}
