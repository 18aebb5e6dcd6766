"""The rules of one conversation, pure: ``decide`` and ``apply``.

No I/O, no clock (``now`` is passed in), no Ray. :func:`decide` checks a
command against the state and returns the events it causes (or raises an
AppError and changes nothing); :func:`apply` folds one event into the state.
Every event but :class:`ReadMarked` takes the conversation's next ``seq``:
the stream is gap-free, so a client that sees n then n + 2 knows it missed
one. Read marks are per-member high-water marks, not part of the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubbub.errors import AppError

__all__ = [
    "KINDS",
    "ROLES",
    "ConversationCreated",
    "ConversationState",
    "Event",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "MessageDeleted",
    "MessageEdited",
    "MessageSent",
    "ReadMarked",
    "TitleChanged",
    "apply",
    "decide",
    "message_view",
]

KINDS = ("direct", "group", "channel")
ROLES = ("owner", "admin", "member")
_MANAGERS = frozenset({"owner", "admin"})

Args = dict[str, Any]


@dataclass(slots=True)
class Member:
    user_id: str
    role: str
    joined_at: datetime
    last_read_seq: int = 0


@dataclass(slots=True)
class Message:
    id: str
    seq: int
    author_id: str
    body: str
    client_msg_id: str
    reply_to: str | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False


@dataclass(slots=True)
class ConversationState:
    id: str
    tenant_id: str
    kind: str
    visibility: str
    title: str | None
    subject: dict[str, str] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    seq: int = 0
    last_message_seq: int | None = None
    members: dict[str, Member] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], str] = field(default_factory=dict)


# -- events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime


@dataclass(frozen=True, slots=True)
class ConversationCreated(Event):
    conversation: ConversationState
    member_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessageSent(Event):
    message: Message


@dataclass(frozen=True, slots=True)
class MessageEdited(Event):
    message_id: str
    body: str


@dataclass(frozen=True, slots=True)
class MessageDeleted(Event):
    message_id: str
    by: str


@dataclass(frozen=True, slots=True)
class MemberJoined(Event):
    user_id: str
    role: str
    by: str


@dataclass(frozen=True, slots=True)
class MemberLeft(Event):
    user_id: str
    by: str


@dataclass(frozen=True, slots=True)
class TitleChanged(Event):
    title: str | None
    by: str


@dataclass(frozen=True, slots=True)
class ReadMarked(Event):
    user_id: str
    up_to_seq: int


# -- decide ---------------------------------------------------------------


def decide(state: ConversationState | None, name: str, args: Args, now: datetime) -> list[Event]:
    """The events of command ``name``; AppError when it is refused."""
    decider = _DECIDERS.get(name)
    if decider is None:
        raise AppError("unknown_command", f"no conversation command {name!r}", status=400)
    if name == "create":
        return decider(state, args, now)
    if state is None:
        raise AppError.not_found("conversation")
    return decider(state, args, now)


def _create(state: ConversationState | None, args: Args, now: datetime) -> list[Event]:
    if state is not None:
        _member(state, args)  # an existing conversation: get, if you are in it
        return []
    actor = str(args["actor"])
    kind = str(args["kind"])
    if kind not in KINDS:
        raise AppError("validation_failed", f"expected kind in {KINDS}, got {kind!r}", status=422)
    member_ids = tuple(dict.fromkeys([actor, *map(str, args.get("member_ids", ()))]))
    if kind == "direct" and len(member_ids) != 2:
        raise AppError(
            "validation_failed",
            f"a direct conversation has exactly two members, got {len(member_ids)}",
            status=422,
        )
    conversation = ConversationState(
        id=str(args["conversation_id"]),
        tenant_id=str(args["tenant_id"]),
        kind=kind,
        visibility=str(args.get("visibility") or "private"),
        title=args.get("title"),
        subject=args.get("subject"),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    return [ConversationCreated(now, conversation, member_ids)]


def _send(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    actor = _member(state, args).user_id
    client_msg_id = str(args["client_msg_id"])
    if (actor, client_msg_id) in state.by_client_id:
        return []  # a retry: the reply is the message already sent
    reply_to = args.get("reply_to")
    if reply_to is not None and str(reply_to) not in state.messages:
        raise AppError(
            "reply_to_not_found",
            f"reply_to names no message of this conversation: {reply_to}",
            status=422,
        )
    message = Message(
        id=str(args["message_id"]),
        seq=state.seq + 1,
        author_id=actor,
        body=str(args["body"]),
        client_msg_id=client_msg_id,
        reply_to=None if reply_to is None else str(reply_to),
        created_at=now,
    )
    return [MessageSent(now, message)]


def _edit(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    actor = _member(state, args).user_id
    message = _message(state, args)
    if message.author_id != actor:
        raise AppError("not_author", "only the author may edit a message", status=403)
    if message.deleted:
        raise AppError("message_deleted", "a deleted message cannot be edited", status=409)
    return [MessageEdited(now, message.id, str(args["body"]))]


def _delete(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    message = _message(state, args)
    if message.author_id != member.user_id and member.role not in _MANAGERS:
        raise AppError("not_author", "only the author, an owner or an admin may delete", status=403)
    if message.deleted:
        return []  # already a tombstone
    return [MessageDeleted(now, message.id, member.user_id)]


def _add_members(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    actor = str(args["actor"])
    user_ids = list(dict.fromkeys(map(str, args["user_ids"])))
    self_join = actor not in state.members and user_ids == [actor]
    if self_join and state.kind == "channel" and state.visibility == "public":
        return [MemberJoined(now, actor, "member", actor)]
    member = _member(state, args)
    _not_direct(state)
    if member.role not in _MANAGERS and not (
        state.kind == "channel" and state.visibility == "public"
    ):
        raise AppError("insufficient_role", "adding members needs owner or admin", status=403)
    return [MemberJoined(now, u, "member", actor) for u in user_ids if u not in state.members]


def _remove_member(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    _not_direct(state)
    target = state.members.get(str(args["user_id"]))
    if target is None:
        raise AppError.not_found("member")
    if target.user_id == member.user_id:
        return [MemberLeft(now, target.user_id, member.user_id)]
    if member.role not in _MANAGERS or (target.role == "owner" and member.role != "owner"):
        raise AppError("insufficient_role", "removing this member needs a higher role", status=403)
    return [MemberLeft(now, target.user_id, member.user_id)]


def _leave(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    _not_direct(state)
    return [MemberLeft(now, member.user_id, member.user_id)]


def _update(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    _not_direct(state)
    if member.role not in _MANAGERS:
        raise AppError("insufficient_role", "changing the title needs owner or admin", status=403)
    title = args.get("title")
    if title == state.title:
        return []
    return [TitleChanged(now, title, member.user_id)]


def _read(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    up_to = args["up_to_seq"]
    if not isinstance(up_to, int) or up_to < 0 or up_to > state.seq:
        raise AppError(
            "seq_out_of_range",
            f"expected up_to_seq between 0 and {state.seq} (the last seq), got {up_to}",
            status=422,
        )
    if up_to <= member.last_read_seq:
        return []  # a read mark never moves backwards
    return [ReadMarked(now, member.user_id, up_to)]


def _authorize(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    _member(state, args)
    return []


def _member(state: ConversationState, args: Args) -> Member:
    """The acting member; 404 for anyone else, so a conversation never leaks."""
    member = state.members.get(str(args.get("actor")))
    if member is None:
        raise AppError.not_found("conversation")
    return member


def _message(state: ConversationState, args: Args) -> Message:
    message = state.messages.get(str(args["message_id"]))
    if message is None:
        raise AppError.not_found("message")
    return message


def _not_direct(state: ConversationState) -> None:
    if state.kind == "direct":
        raise AppError(
            "direct_conversation_fixed",
            "a direct conversation's members and title cannot change",
            status=409,
        )


_DECIDERS: dict[str, Callable[..., list[Event]]] = {
    "create": _create,
    "send": _send,
    "edit": _edit,
    "delete": _delete,
    "add_members": _add_members,
    "remove_member": _remove_member,
    "leave": _leave,
    "update": _update,
    "read": _read,
    "authorize": _authorize,
}


# -- apply ----------------------------------------------------------------


def apply(state: ConversationState | None, event: Event) -> ConversationState:
    """``state`` with ``event`` folded in (in place); seq advances for stream events."""
    if isinstance(event, ConversationCreated):
        state = event.conversation
        for user_id in event.member_ids:
            role = "owner" if user_id == state.created_by else "member"
            state.members[user_id] = Member(user_id, role, event.at)
        state.seq = 1
        return state
    assert state is not None
    if not isinstance(event, ReadMarked):
        state.seq += 1
        state.updated_at = event.at
    _APPLIERS[type(event)](state, event)
    return state


def _sent(state: ConversationState, event: MessageSent) -> None:
    message = event.message
    state.messages[message.id] = message
    state.by_client_id[(message.author_id, message.client_msg_id)] = message.id
    state.last_message_seq = message.seq
    state.members[message.author_id].last_read_seq = message.seq  # you have read your own


def _edited(state: ConversationState, event: MessageEdited) -> None:
    message = state.messages[event.message_id]
    message.body, message.edited_at = event.body, event.at


def _deleted(state: ConversationState, event: MessageDeleted) -> None:
    message = state.messages[event.message_id]
    message.body, message.deleted = "", True


def _joined(state: ConversationState, event: MemberJoined) -> None:
    state.members[event.user_id] = Member(event.user_id, event.role, event.at)


def _left(state: ConversationState, event: MemberLeft) -> None:
    del state.members[event.user_id]


def _titled(state: ConversationState, event: TitleChanged) -> None:
    state.title = event.title


def _read_marked(state: ConversationState, event: ReadMarked) -> None:
    state.members[event.user_id].last_read_seq = event.up_to_seq


_APPLIERS: dict[type, Callable[[ConversationState, Any], None]] = {
    MessageSent: _sent,
    MessageEdited: _edited,
    MessageDeleted: _deleted,
    MemberJoined: _joined,
    MemberLeft: _left,
    TitleChanged: _titled,
    ReadMarked: _read_marked,
}


def message_view(conversation_id: str, message: Message) -> dict[str, Any]:
    """A message as the wire shows it (``docs/events.md``, ``/openapi.json``)."""
    return {
        "id": message.id,
        "conversation_id": conversation_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "body": message.body,
        "client_msg_id": message.client_msg_id,
        "reply_to": message.reply_to,
        "created_at": message.created_at.isoformat(),
        "edited_at": None if message.edited_at is None else message.edited_at.isoformat(),
        "deleted": message.deleted,
    }
