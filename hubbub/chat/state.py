"""The rules of one conversation, pure: ``decide`` and ``apply``.

No I/O, no clock (``now`` is passed in), no Ray. :func:`decide` checks a
command against the state and returns the events it causes (or raises an
AppError and changes nothing); :func:`apply` folds one event into the state.
Every event but the private ones (:class:`ReadMarked`, :class:`MembershipSet`)
takes the conversation's next ``seq``: the stream is gap-free, so a client
that sees n then n + 2 knows it missed one. Read marks and mute/star are
per-member settings, not part of the stream.

Support conversations have a status; a snoozed one wakes (back to open) once
``snooze_until`` has passed: any command that reaches the conversation after
that time ends with the wake event, and the gateways' sweep sends ``wake``
to those nobody touched (``hubbub.chat.snooze``). A deleted conversation
answers 404 to everything, like one that never existed.

An agent conversation is one user with the AI assistant. The assistant is
not a member (members are users of the tenant): it is :data:`ASSISTANT_ID`,
the author of the messages that ``post_assistant_message`` writes — a
command for the jobs that produce replies, never for a client.

The state holds only a window of the messages (:mod:`hubbub.chat.messages`).
:func:`missing` names the messages a command is about that the window cannot
answer for; the entity reads them into the window before :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubbub.chat.messages import Message, MessageRef, MessageWindow, Ref
from hubbub.errors import AppError, FieldError

__all__ = [
    "ASSISTANT_ID",
    "KINDS",
    "ROLES",
    "STATUSES",
    "ConversationChanged",
    "ConversationCreated",
    "ConversationDeleted",
    "ConversationState",
    "Event",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "MembershipSet",
    "Message",
    "MessageDeleted",
    "MessageEdited",
    "MessageSent",
    "ReactionAdded",
    "ReactionRemoved",
    "ReadMarked",
    "apply",
    "decide",
    "in_stream",
    "is_due",
    "message_view",
    "missing",
    "reactions_view",
]

KINDS = ("direct", "group", "channel", "support", "agent")
#: The author id of the AI assistant's messages in agent conversations, in every tenant.
ASSISTANT_ID = "00000000-0000-0000-0000-00000000a551"
STATUSES = ("open", "pending", "resolved", "snoozed")
#: Fields only a support conversation has, as ``PATCH /conversations/{id}`` names them.
SUPPORT_FIELDS = ("status", "snooze_until", "assignee_id", "labels")
ROLES = ("owner", "admin", "member")
_MANAGERS = frozenset({"owner", "admin"})

Args = dict[str, Any]


@dataclass(slots=True)
class Member:
    user_id: str
    role: str
    joined_at: datetime
    last_read_seq: int = 0
    muted: bool = False
    starred: bool = False


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
    status: str | None = None  # support conversations only
    snooze_until: datetime | None = None
    assignee_id: str | None = None
    labels: tuple[str, ...] = ()
    deleted: bool = False
    members: dict[str, Member] = field(default_factory=dict)
    messages: MessageWindow = field(default_factory=MessageWindow)


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
class ConversationChanged(Event):
    """Fields of the conversation changed: ``changes`` maps each to its new value.

    ``by`` is None when the conversation changed by itself (a snooze woke).
    """

    changes: dict[str, Any]
    by: str | None


@dataclass(frozen=True, slots=True)
class ConversationDeleted(Event):
    by: str


@dataclass(frozen=True, slots=True)
class ReactionAdded(Event):
    message_id: str
    emoji: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ReactionRemoved(Event):
    message_id: str
    emoji: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ReadMarked(Event):
    user_id: str
    up_to_seq: int


@dataclass(frozen=True, slots=True)
class MembershipSet(Event):
    """A member's own settings of the conversation (private: no seq, not published)."""

    user_id: str
    muted: bool
    starred: bool


_PRIVATE = (ReadMarked, MembershipSet)


def in_stream(event: Event) -> bool:
    """Whether ``event`` takes a seq (and is published to every member)."""
    return not isinstance(event, _PRIVATE)


def is_due(state: ConversationState, now: datetime) -> bool:
    """A snoozed conversation whose time has come: it should wake."""
    return (
        state.status == "snoozed"
        and not state.deleted
        and state.snooze_until is not None
        and state.snooze_until <= now
    )


# -- decide ---------------------------------------------------------------


def decide(state: ConversationState | None, name: str, args: Args, now: datetime) -> list[Event]:
    """The events of command ``name``; AppError when it is refused."""
    decider = _DECIDERS.get(name)
    if decider is None:
        raise AppError("unknown_command", f"no conversation command {name!r}", status=400)
    if state is not None and state.deleted:
        raise AppError.not_found("conversation")
    if name == "create":
        return decider(state, args, now)
    if state is None:
        raise AppError.not_found("conversation")
    if missing(state, name, args):
        raise LookupError(f"{name} is about messages outside the window: read them first")
    events = decider(state, args, now)
    if is_due(state, now) and not any(_sets_status(e) for e in events):
        events.append(ConversationChanged(now, {"status": "open", "snooze_until": None}, None))
    return events


def missing(state: ConversationState | None, name: str, args: Args) -> frozenset[Ref]:
    """The messages command ``name`` is about that only Postgres can tell of."""
    if state is None or state.deleted:
        return frozenset()
    about = _ABOUT.get(name)
    refs = () if about is None else about(state, args)
    return frozenset(ref for ref in refs if state.messages.unknown(ref))


def _about_send(state: ConversationState, args: Args, author: str) -> list[Ref]:
    client_msg_id = str(args["client_msg_id"])
    if state.messages.sent(author, client_msg_id) is not None:
        return []  # a retry: it needs nothing more
    reply_to = args.get("reply_to")
    refs = state.messages.about_client(author, client_msg_id)
    return refs if reply_to is None else [*refs, MessageRef(str(reply_to))]


_ABOUT: dict[str, Callable[[ConversationState, Args], list[Ref]]] = {
    "send": lambda state, args: _about_send(state, args, str(args.get("actor"))),
    "post_assistant_message": lambda state, args: _about_send(state, args, ASSISTANT_ID),
    "edit": lambda state, args: [MessageRef(str(args["message_id"]))],
    "delete": lambda state, args: [MessageRef(str(args["message_id"]))],
    "react": lambda state, args: [MessageRef(str(args["message_id"]))],
}


def _sets_status(event: Event) -> bool:
    return isinstance(event, ConversationChanged) and "status" in event.changes


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
    if kind == "agent" and len(member_ids) != 1:
        raise AppError(
            "validation_failed",
            f"an agent conversation is you and the assistant: expected no member_ids, "
            f"got {len(member_ids) - 1}",
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
        status="open" if kind == "support" else None,
    )
    return [ConversationCreated(now, conversation, member_ids)]


def _send(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    return _new_message(state, _member(state, args).user_id, args, now)


def _new_message(state: ConversationState, actor: str, args: Args, now: datetime) -> list[Event]:
    """``actor``'s message from ``args`` (none if its ``client_msg_id`` was sent already)."""
    client_msg_id = str(args["client_msg_id"])
    if state.messages.sent(actor, client_msg_id) is not None:
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


def _post_assistant_message(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    """A message by the assistant (:data:`ASSISTANT_ID`), idempotent by ``client_msg_id``."""
    if state.kind != "agent":
        raise AppError(
            "not_agent_conversation",
            f"expected an agent conversation for an assistant message, got kind {state.kind!r}",
            status=409,
        )
    return _new_message(state, ASSISTANT_ID, args, now)


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
    _members_fixed(state)
    if member.role not in _MANAGERS and not (
        state.kind == "channel" and state.visibility == "public"
    ):
        raise AppError("insufficient_role", "adding members needs owner or admin", status=403)
    return [MemberJoined(now, u, "member", actor) for u in user_ids if u not in state.members]


def _remove_member(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    _members_fixed(state)
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
    _members_fixed(state)
    return [MemberLeft(now, member.user_id, member.user_id)]


def _update(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    """Change any of title, status, snooze_until, assignee_id, labels (``args["changes"]``).

    The title needs owner or admin (and no direct conversation); the support
    fields need a support conversation and any member (an agent of the
    inbox). A new assignee who is not a member yet joins first.
    """
    member = _member(state, args)
    given: dict[str, Any] = dict(args["changes"])
    if "title" in given:
        _not_direct(state)
        if member.role not in _MANAGERS:
            raise AppError(
                "insufficient_role", "changing the title needs owner or admin", status=403
            )
    _check_support_fields(state, given)
    if "snooze_until" in given and given["snooze_until"] is not None:
        given["snooze_until"] = _future(given["snooze_until"], now)
        given.setdefault("status", "snoozed")
    status = given.get("status", state.status)
    if status == "snoozed":
        given.setdefault("snooze_until", state.snooze_until if state.status == "snoozed" else None)
        if given["snooze_until"] is None:
            raise _invalid("snooze_until", "expected a time to wake when status is snoozed")
    elif given.get("snooze_until") is not None:
        raise _invalid("snooze_until", f"expected no snooze_until with status {status!r}")
    elif state.snooze_until is not None:
        given["snooze_until"] = None  # leaving snoozed forgets the wake-up time
    if "labels" in given:
        given["labels"] = tuple(given["labels"])
    changes = {k: v for k, v in given.items() if getattr(state, k) != v}
    events: list[Event] = []
    assignee = changes.get("assignee_id")
    if assignee is not None and assignee not in state.members:
        events.append(MemberJoined(now, assignee, "member", member.user_id))
    if changes:
        events.append(ConversationChanged(now, changes, member.user_id))
    return events


def _check_support_fields(state: ConversationState, given: Args) -> None:
    named = [f for f in SUPPORT_FIELDS if f in given]
    if named and state.kind != "support":
        message = f"only support conversations have {', '.join(named)}; this is a {state.kind}"
        raise AppError(
            "validation_failed",
            message,
            status=422,
            errors=tuple(FieldError("body", f, "support conversations only") for f in named),
        )
    status = given.get("status", "open")
    if status not in STATUSES:
        raise _invalid("status", f"expected status in {STATUSES}, got {status!r}")


def _future(value: datetime | str, now: datetime) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if at.tzinfo is None:
        raise _invalid("snooze_until", f"expected a time with a UTC offset, got {value}")
    if at <= now:
        raise _invalid("snooze_until", f"expected a time after {now.isoformat()}, got {value}")
    return at


def _invalid(field_name: str, message: str) -> AppError:
    return AppError(
        "validation_failed",
        message,
        status=422,
        errors=(FieldError("body", field_name, message),),
    )


def _wake(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    """Nothing by itself: :func:`decide` appends the wake event when it is due."""
    return []


def _delete_conversation(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    if member.role not in _MANAGERS:
        raise AppError(
            "insufficient_role", "deleting a conversation needs owner or admin", status=403
        )
    return [ConversationDeleted(now, member.user_id)]


def _react(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    """Add (``args["add"]``) or remove the actor's ``emoji`` on a message; idempotent."""
    actor = _member(state, args).user_id
    message = _message(state, args)
    if message.deleted:
        raise AppError("message_deleted", "a deleted message takes no reactions", status=409)
    emoji = str(args["emoji"])
    present = actor in message.reactions.get(emoji, ())
    if bool(args["add"]) == present:
        return []  # one reaction per user per emoji; removing one not there changes nothing
    event = ReactionAdded if args["add"] else ReactionRemoved
    return [event(now, message.id, emoji, actor)]


def _set_membership(state: ConversationState, args: Args, now: datetime) -> list[Event]:
    member = _member(state, args)
    muted = member.muted if args.get("muted") is None else bool(args["muted"])
    starred = member.starred if args.get("starred") is None else bool(args["starred"])
    if (muted, starred) == (member.muted, member.starred):
        return []
    return [MembershipSet(now, member.user_id, muted, starred)]


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


def _members_fixed(state: ConversationState) -> None:
    """Direct and agent conversations keep the members they were created with."""
    _not_direct(state)
    if state.kind == "agent":
        raise AppError(
            "agent_conversation_fixed",
            "an agent conversation is its user and the assistant: its members cannot change",
            status=409,
        )


_DECIDERS: dict[str, Callable[..., list[Event]]] = {
    "create": _create,
    "send": _send,
    "post_assistant_message": _post_assistant_message,
    "edit": _edit,
    "delete": _delete,
    "add_members": _add_members,
    "remove_member": _remove_member,
    "leave": _leave,
    "update": _update,
    "read": _read,
    "authorize": _authorize,
    "wake": _wake,
    "delete_conversation": _delete_conversation,
    "react": _react,
    "membership": _set_membership,
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
    if in_stream(event):
        state.seq += 1
        state.updated_at = event.at
    _APPLIERS[type(event)](state, event)
    return state


def _sent(state: ConversationState, event: MessageSent) -> None:
    message = event.message
    state.messages.add(message)
    state.last_message_seq = message.seq
    author = state.members.get(message.author_id)  # None: the assistant
    if author is not None:
        author.last_read_seq = message.seq  # you have read your own


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


def _changed(state: ConversationState, event: ConversationChanged) -> None:
    for name, value in event.changes.items():
        setattr(state, name, value)


def _conversation_deleted(state: ConversationState, event: ConversationDeleted) -> None:
    state.deleted = True


def _reaction_added(state: ConversationState, event: ReactionAdded) -> None:
    reactions = state.messages[event.message_id].reactions
    reactions.setdefault(event.emoji, []).append(event.user_id)


def _reaction_removed(state: ConversationState, event: ReactionRemoved) -> None:
    reactions = state.messages[event.message_id].reactions
    reactions[event.emoji].remove(event.user_id)
    if not reactions[event.emoji]:
        del reactions[event.emoji]


def _membership_set(state: ConversationState, event: MembershipSet) -> None:
    member = state.members[event.user_id]
    member.muted, member.starred = event.muted, event.starred


def _read_marked(state: ConversationState, event: ReadMarked) -> None:
    state.members[event.user_id].last_read_seq = event.up_to_seq


_APPLIERS: dict[type, Callable[[ConversationState, Any], None]] = {
    MessageSent: _sent,
    MessageEdited: _edited,
    MessageDeleted: _deleted,
    MemberJoined: _joined,
    MemberLeft: _left,
    ConversationChanged: _changed,
    ConversationDeleted: _conversation_deleted,
    ReactionAdded: _reaction_added,
    ReactionRemoved: _reaction_removed,
    ReadMarked: _read_marked,
    MembershipSet: _membership_set,
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
        "reactions": reactions_view(message.reactions),
    }


def reactions_view(reactions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``[{emoji, count, user_ids}]``, in the order each emoji was first used."""
    return [
        {"emoji": emoji, "count": len(users), "user_ids": list(users)}
        for emoji, users in reactions.items()
    ]
