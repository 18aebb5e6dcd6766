"""A conversation's events, each with its wire view beside it.

Every event but the private ones (:class:`ReadMarked`, :class:`MembershipSet`)
is in the conversation's stream: it takes the next ``seq``, is stored as a
row of ``conversation_events`` (the source of replay by ``after_seq``) and
published on :func:`channel` after commit. Each event class names its wire
event (``name``) and builds its payload (``wire``) from the state it was
applied to; ``docs/events.md`` lists them. A stream event's payload starts
with ``{conversation_id, seq}``. :class:`ReadMarked` is published (``read``)
but takes no seq; :class:`MembershipSet` is not published at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from hubbub.chat.messages import Message, message_view, reactions_view

if TYPE_CHECKING:
    from hubbub.chat.state import ConversationState

__all__ = [
    "ConversationChanged",
    "ConversationCreated",
    "ConversationDeleted",
    "Event",
    "MemberJoined",
    "MemberLeft",
    "MembershipSet",
    "MessageDeleted",
    "MessageEdited",
    "MessageSent",
    "ReactionAdded",
    "ReactionRemoved",
    "ReadMarked",
    "channel",
]


def channel(conversation_id: str) -> str:
    """The bus topic of a conversation's events."""
    return f"conversation:{conversation_id}"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a conversation, at ``at``.

    ``name``: the wire event (None: never published); ``in_stream``: it takes
    a seq. :meth:`wire` is its payload, from the state it was applied to.
    """

    name: ClassVar[str | None]
    in_stream: ClassVar[bool] = True
    at: datetime

    def wire(self, state: ConversationState) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} is not published")


def _head(state: ConversationState) -> dict[str, Any]:
    return {"conversation_id": state.id, "seq": state.seq}


@dataclass(frozen=True, slots=True)
class ConversationCreated(Event):
    name = "conversation:created"
    conversation: ConversationState
    member_ids: tuple[str, ...]

    def wire(self, state: ConversationState) -> dict[str, Any]:
        conversation = {
            "id": state.id,
            "tenant_id": state.tenant_id,
            "kind": state.kind,
            "visibility": state.visibility,
            "title": state.title,
            "subject": state.subject,
            "created_by": state.created_by,
            "status": state.status,
        }
        return _head(state) | {"conversation": conversation, "member_ids": list(self.member_ids)}


@dataclass(frozen=True, slots=True)
class MessageSent(Event):
    name = "message:new"
    message: Message

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return {
            "conversation_id": state.id,
            "seq": state.seq,
            "message": message_view(state.id, self.message),
        }


@dataclass(frozen=True, slots=True)
class MessageEdited(Event):
    name = "message:updated"
    message_id: str
    body: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _head(state) | {"message": message_view(state.id, state.messages[self.message_id])}


@dataclass(frozen=True, slots=True)
class MessageDeleted(Event):
    name = "message:deleted"
    message_id: str
    by: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _head(state) | {"message": message_view(state.id, state.messages[self.message_id])}


@dataclass(frozen=True, slots=True)
class MemberJoined(Event):
    name = "member:joined"
    user_id: str
    role: str
    by: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        member = {"user_id": self.user_id, "role": self.role, "by": self.by}
        return _head(state) | member | {"joined_at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class MemberLeft(Event):
    name = "member:left"
    user_id: str
    by: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _head(state) | {"user_id": self.user_id, "by": self.by}


@dataclass(frozen=True, slots=True)
class ConversationChanged(Event):
    """Fields of the conversation changed: ``changes`` maps each to its new value.

    ``by`` is None when the conversation changed by itself (a snooze woke).
    """

    name = "conversation:updated"
    changes: dict[str, Any]
    by: str | None

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _head(state) | {"changes": _changes(self.changes), "by": self.by}


def _changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Changed fields as JSON: times in RFC 3339, labels as a list."""
    wire = dict(changes)
    if isinstance(wire.get("snooze_until"), datetime):
        wire["snooze_until"] = wire["snooze_until"].isoformat()
    if "labels" in wire:
        wire["labels"] = list(wire["labels"])
    return wire


@dataclass(frozen=True, slots=True)
class ConversationDeleted(Event):
    name = "conversation:deleted"
    by: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _head(state) | {"by": self.by}


@dataclass(frozen=True, slots=True)
class ReactionAdded(Event):
    name = "reaction"
    message_id: str
    emoji: str
    user_id: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _reaction(self, state, "added")


@dataclass(frozen=True, slots=True)
class ReactionRemoved(Event):
    name = "reaction"
    message_id: str
    emoji: str
    user_id: str

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return _reaction(self, state, "removed")


def _reaction(
    event: ReactionAdded | ReactionRemoved, state: ConversationState, action: str
) -> dict[str, Any]:
    return _head(state) | {
        "message_id": event.message_id,
        "emoji": event.emoji,
        "user_id": event.user_id,
        "action": action,
        "reactions": reactions_view(state.messages[event.message_id].reactions),
    }


@dataclass(frozen=True, slots=True)
class ReadMarked(Event):
    """A member read up to ``up_to_seq``: published (``read``), but no seq."""

    name = "read"
    in_stream = False
    user_id: str
    up_to_seq: int

    def wire(self, state: ConversationState) -> dict[str, Any]:
        return {"conversation_id": state.id, "user_id": self.user_id, "up_to_seq": self.up_to_seq}


@dataclass(frozen=True, slots=True)
class MembershipSet(Event):
    """A member's own settings of the conversation (private: no seq, not published)."""

    name = None
    in_stream = False
    user_id: str
    muted: bool
    starred: bool
