"""A conversation's state, and how each event changes it: :func:`apply`.

Pure: no I/O, no clock, no Ray. :func:`apply` folds one event into the state,
in place, through one table of appliers (the state is large and on the hot
path, so it is not copied); a stream event (``Event.in_stream``) advances the
gap-free ``seq``. The events are :mod:`hubbub.chat.events`; the rules that
decide them are :mod:`hubbub.chat.rules`.

Support conversations have a status; a snoozed one whose ``snooze_until``
has passed is due to wake (:func:`is_due`). An agent conversation is one
user with the AI assistant, which is no member: it is :data:`ASSISTANT_ID`,
the author of the assistant's messages.

The state holds only a window of the messages (:mod:`hubbub.chat.messages`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubbub.chat.events import (
    ConversationChanged,
    ConversationCreated,
    ConversationDeleted,
    Event,
    MemberJoined,
    MemberLeft,
    MembershipSet,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    ReactionAdded,
    ReactionRemoved,
    ReadMarked,
)
from hubbub.chat.messages import MessageWindow

__all__ = [
    "ASSISTANT_ID",
    "KINDS",
    "MANAGERS",
    "ROLES",
    "STATUSES",
    "SUPPORT_FIELDS",
    "ConversationState",
    "Member",
    "apply",
    "is_due",
]

KINDS = ("direct", "group", "channel", "support", "agent")
#: The author id of the AI assistant's messages in agent conversations, in every tenant.
ASSISTANT_ID = "00000000-0000-0000-0000-00000000a551"
STATUSES = ("open", "pending", "resolved", "snoozed")
#: Fields only a support conversation has, as ``PATCH /conversations/{id}`` names them.
SUPPORT_FIELDS = ("status", "snooze_until", "assignee_id", "labels")
ROLES = ("owner", "admin", "member")
MANAGERS = frozenset({"owner", "admin"})


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


def is_due(state: ConversationState, now: datetime) -> bool:
    """A snoozed conversation whose time has come: it should wake."""
    return (
        state.status == "snoozed"
        and not state.deleted
        and state.snooze_until is not None
        and state.snooze_until <= now
    )


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
    if event.in_stream:
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
